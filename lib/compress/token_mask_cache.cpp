#include "compress/token_mask_cache.h"

#include <limits>

#include "core/error.h"

namespace echokv {

TokenMaskCache::TokenMaskCache(std::unique_ptr<KVCache> base, FreedBytes freed_bytes)
    : base_(std::move(base)), freed_bytes_(std::move(freed_bytes)) {
  if (!base_ || !freed_bytes_) throw Error("TokenMaskCache: needs a base cache and its byte accounting");
}

void TokenMaskCache::set_keep(int64_t begin, std::vector<torch::Tensor> keep) {
  int64_t n = -1;
  for (auto& k : keep) {
    if (k.dim() == 1) k = k.view({1, -1});
    if (k.dim() != 2 || k.size(0) < 1) throw Error("TokenMaskCache: a keep mask must be [n] or [heads, n]");
    if (n >= 0 && k.size(1) != n) throw Error("TokenMaskCache: every layer's keep mask must cover the same tokens");
    n = k.size(1);
    if (begin < 0 || begin + n > base_->next_position()) throw Error("TokenMaskCache: keep mask outside the cached tokens");
    k = k.to(torch::kBool);
  }
  begin_ = begin;
  keep_ = std::move(keep);
}

void TokenMaskCache::for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) {
  if (keep_.empty()) return base_->for_each_block(layer, visit);
  if (layer < 0 || layer >= static_cast<int>(keep_.size()))
    throw Error("TokenMaskCache: no keep mask for layer " + std::to_string(layer));
  auto& keep = keep_[static_cast<size_t>(layer)];
  const int64_t n = keep.size(1);
  base_->for_each_block(layer, [&](const KVBlock& block) {
    if (block.max_position < begin_ || block.min_position >= begin_ + n) return visit(block);
    if (keep.device() != block.positions.device()) keep = keep.to(block.positions.device());
    // Rows: this block's KV heads (one for a per-head block); [h, m] kept flags of its tokens.
    auto rows = keep.size(0) == 1 ? keep : block.head >= 0 ? keep.narrow(0, block.head, 1) : keep;
    auto offset = block.positions - begin_;                      // [m]
    auto outside = (offset < 0) | (offset >= n);
    auto kept = rows.index_select(1, offset.clamp(0, n - 1)) | outside.unsqueeze(0);
    auto bias = torch::zeros(kept.sizes(), torch::TensorOptions().dtype(torch::kFloat32).device(kept.device()))
                    .masked_fill_(kept.logical_not(), -std::numeric_limits<float>::infinity())
                    .view({1, kept.size(0), 1, kept.size(1)});
    KVBlock b = block;
    b.bias = block.bias.defined() ? block.bias.to(torch::kFloat32) + bias : bias;
    visit(b);
  });
}

int64_t TokenMaskCache::bytes() const {
  const int64_t stored = base_->bytes();
  if (keep_.empty()) return stored;
  return stored - freed_bytes_(*base_, begin_, keep_);
}

}  // namespace echokv
