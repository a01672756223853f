#include "compress/kivi_compacted_cache.h"

#include "core/error.h"

namespace echokv {

KiviCompactedCache::KiviCompactedCache(const CompactedCache& kept, const ModelConfig& config,
                                       std::shared_ptr<const Rope> rope, KiviOptions options)
    : rope_(std::move(rope)),
      o_(options),
      layers_(config.num_hidden_layers),
      kv_heads_(config.num_key_value_heads),
      head_dim_(config.head_dim),
      batch_(0),
      element_size_(0),
      device_(torch::kCPU),
      dtype_(torch::kFloat32) {
  check_kivi_options(o_, head_dim_);
  const auto k00 = kept.head_keys(0, 0);  // [B, len, D]
  batch_ = k00.size(0);
  device_ = k00.device();
  dtype_ = k00.scalar_type();
  element_size_ = static_cast<int64_t>(k00.element_size());
  committed_ = kept.next_position();
  full_tokens_ = kept.full_bytes() / (2 * layers_ * kv_heads_ * batch_ * head_dim_ * element_size_);
  heads_.resize(static_cast<size_t>(layers_));
  for (int64_t l = 0; l < layers_; ++l)
    for (int64_t h = 0; h < kv_heads_; ++h) {
      heads_[static_cast<size_t>(l)].emplace_back(batch_, 1, head_dim_, o_, device_, dtype_);
      auto& list = heads_[static_cast<size_t>(l)].back();
      const int li = static_cast<int>(l);
      if (kept.head_length(li, h) == 0) continue;
      auto pos = kept.head_positions(li, h).to(torch::kCPU).contiguous();
      std::vector<int64_t> host(pos.data_ptr<int64_t>(), pos.data_ptr<int64_t>() + pos.numel());
      list.add_pending(kept.head_keys(li, h).unsqueeze(1), kept.head_values(li, h).unsqueeze(1), host);
      list.commit();
    }
}

void KiviCompactedCache::append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v,
                                const torch::Tensor& positions) {
  // k_pre_rope, v: [B, Hkv, T, D]; positions: [T] after every committed one
  auto k = rope_->apply(k_pre_rope, positions);
  const int64_t t = k.size(2);
  auto& lists = heads_.at(static_cast<size_t>(layer));
  std::vector<int64_t> host(static_cast<size_t>(t));
  for (int64_t i = 0; i < t; ++i) host[static_cast<size_t>(i)] = committed_ + lists[0].pending() + i;
  for (int64_t h = 0; h < kv_heads_; ++h) lists[static_cast<size_t>(h)].add_pending(k.narrow(1, h, 1), v.narrow(1, h, 1), host);
}

void KiviCompactedCache::for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) {
  const auto& lists = heads_.at(static_cast<size_t>(layer));
  for (int64_t h = 0; h < kv_heads_; ++h)
    lists[static_cast<size_t>(h)].visit([&](KVBlock& b) {
      b.head = h;
      b.kv_heads = kv_heads_;
      visit(b);
    });
}

void KiviCompactedCache::advance(int64_t tokens) {
  for (auto& lists : heads_)
    for (auto& list : lists) {
      if (list.pending() != tokens) throw Error("KIVI x eviction cache: every layer must append each token once");
      list.commit();
    }
  committed_ += tokens;
  full_tokens_ += tokens;
}

int64_t KiviCompactedCache::bytes() const {
  int64_t total = 0;
  for (const auto& lists : heads_)
    for (const auto& list : lists) total += list.bytes();
  return total;
}

int64_t KiviCompactedCache::full_bytes() const {
  const int64_t pending = heads_.empty() || heads_[0].empty() ? 0 : heads_[0][0].pending();
  return (full_tokens_ + pending) * 2 * layers_ * kv_heads_ * batch_ * head_dim_ * element_size_;
}

void KiviCompactedCache::reset() {
  for (auto& lists : heads_)
    for (auto& list : lists) list = KiviTokenList(batch_, 1, head_dim_, o_, device_, dtype_);
  committed_ = full_tokens_ = 0;
}

}  // namespace echokv
