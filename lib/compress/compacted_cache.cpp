#include "compress/compacted_cache.h"

#include "cache/growable.h"

#include "core/error.h"

namespace echokv {

CompactedCache::CompactedCache(const FullCache& full, std::shared_ptr<const Rope> rope, int64_t range_begin,
                               const std::vector<torch::Tensor>& keep, int64_t headroom)
    : rope_(std::move(rope)), committed_(full.next_position()) {
  const int layers = static_cast<int>(keep.size());
  if (layers == 0) throw Error("CompactedCache: no keep masks");
  if (headroom < 1) headroom = 1;
  heads_.resize(static_cast<size_t>(layers));
  for (int l = 0; l < layers; ++l) {
    auto k = full.keys(l), v = full.values(l);  // [B, Hkv, T, D]
    const int64_t T = k.size(2);
    batch_ = k.size(0);
    kv_heads_ = k.size(1);
    head_dim_ = k.size(3);
    element_size_ = static_cast<int64_t>(k.element_size());
    const auto& m = keep[static_cast<size_t>(l)];
    if (m.dim() != 2 || m.size(0) != kv_heads_ || range_begin < 0 || range_begin + m.size(1) > T)
      throw Error("CompactedCache: keep mask of layer " + std::to_string(l) + " does not fit the cache");
    auto all = torch::ones({kv_heads_, T}, torch::kBool);
    all.narrow(1, range_begin, m.size(1)).copy_(m.to(torch::kCPU, torch::kBool));
    auto positions = torch::arange(T, torch::kInt64);
    for (int64_t h = 0; h < kv_heads_; ++h) {
      auto idx = all[h].nonzero().view({-1});  // kept token positions, ascending
      const int64_t n = idx.size(0);
      Head hd;
      hd.len = n;
      const int64_t cap = n + headroom;
      hd.k = torch::empty({batch_, cap, head_dim_}, k.options());
      hd.v = torch::empty({batch_, cap, head_dim_}, v.options());
      hd.positions = torch::empty({cap}, torch::TensorOptions().dtype(torch::kInt64).device(k.device()));
      auto dev_idx = idx.to(k.device());
      hd.k.narrow(1, 0, n).copy_(k.select(1, h).index_select(1, dev_idx));
      hd.v.narrow(1, 0, n).copy_(v.select(1, h).index_select(1, dev_idx));
      hd.positions.narrow(0, 0, n).copy_(positions.index_select(0, idx));
      if (n > 0) {
        hd.min_position = idx[0].item<int64_t>();
        hd.max_position = idx[n - 1].item<int64_t>();
      }
      heads_[static_cast<size_t>(l)].push_back(std::move(hd));
    }
  }
}

void CompactedCache::reserve(Head& h, int64_t needed) {
  if (needed <= h.k.size(1)) return;
  const int64_t cap = doubled_capacity(h.k.size(1), needed);
  h.k = resized_along(h.k, 1, h.len, cap);
  h.v = resized_along(h.v, 1, h.len, cap);
  h.positions = resized_along(h.positions, 0, h.len, cap);
}

void CompactedCache::append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v,
                            const torch::Tensor& positions) {
  // k_pre_rope, v: [B, Hkv, T, D]; positions: [T]
  const int64_t T = k_pre_rope.size(2);
  auto k = rope_->apply(k_pre_rope, positions);
  auto pos = positions.to(torch::kCPU, torch::kInt64);
  const int64_t first = pos[0].item<int64_t>(), last = pos[T - 1].item<int64_t>();
  for (int64_t h = 0; h < kv_heads_; ++h) {
    Head& hd = heads_[static_cast<size_t>(layer)][static_cast<size_t>(h)];
    reserve(hd, hd.len + T);
    hd.k.narrow(1, hd.len, T).copy_(k.select(1, h));
    hd.v.narrow(1, hd.len, T).copy_(v.select(1, h));
    hd.positions.narrow(0, hd.len, T).copy_(positions);
    if (hd.len == 0) hd.min_position = first;
    hd.max_position = last;
    hd.len += T;
  }
}

void CompactedCache::for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) {
  for (int64_t h = 0; h < kv_heads_; ++h) {
    const Head& hd = heads_[static_cast<size_t>(layer)][static_cast<size_t>(h)];
    if (hd.len == 0) continue;
    KVBlock b;
    b.k = hd.k.narrow(1, 0, hd.len).unsqueeze(1);  // [B, 1, n, D]
    b.v = hd.v.narrow(1, 0, hd.len).unsqueeze(1);
    b.positions = hd.positions.narrow(0, 0, hd.len);
    b.min_position = hd.min_position;
    b.max_position = hd.max_position;
    b.head = h;
    b.kv_heads = kv_heads_;
    visit(b);
  }
}

int64_t CompactedCache::bytes() const {
  int64_t pairs = 0;
  for (const auto& layer : heads_)
    for (const auto& h : layer) pairs += h.len;
  return pairs * batch_ * head_dim_ * 2 * element_size_;
}

int64_t CompactedCache::full_bytes() const {
  return (committed_ + renumbered_away_) * static_cast<int64_t>(heads_.size()) * kv_heads_ * batch_ * head_dim_ * 2 *
         element_size_;
}

void CompactedCache::retain(const std::vector<torch::Tensor>& keep) {
  if (keep.size() != heads_.size()) throw Error("CompactedCache::retain: one mask per layer");
  for (size_t l = 0; l < heads_.size(); ++l)
    for (int64_t h = 0; h < kv_heads_; ++h) {
      Head& hd = heads_[l][static_cast<size_t>(h)];
      const auto& m = keep[l];
      if (m.dim() != 2 || m.size(0) != kv_heads_ || m.size(1) != hd.len)
        throw Error("CompactedCache::retain: the mask of layer " + std::to_string(l) + " does not match the held tokens");
      auto idx = m[h].to(torch::kCPU, torch::kBool).nonzero().view({-1}).to(hd.k.device());  // ascending
      const int64_t n = idx.size(0);
      auto k = hd.k.narrow(1, 0, hd.len).index_select(1, idx), v = hd.v.narrow(1, 0, hd.len).index_select(1, idx);
      auto p = hd.positions.narrow(0, 0, hd.len).index_select(0, idx);
      hd.k.narrow(1, 0, n).copy_(k);
      hd.v.narrow(1, 0, n).copy_(v);
      hd.positions.narrow(0, 0, n).copy_(p);
      hd.len = n;
      if (n > 0) {
        const auto pc = p.to(torch::kCPU);
        hd.min_position = pc[0].item<int64_t>();
        hd.max_position = pc[n - 1].item<int64_t>();
      } else {
        hd.max_position = -1;
      }
    }
}

void CompactedCache::renumber_contiguous() {
  const int64_t len = heads_.at(0).at(0).len;
  for (const auto& layer : heads_)
    for (const auto& h : layer)
      if (h.len != len)
        throw Error("key re-rotation needs every head to keep the same number of tokens (" + std::to_string(h.len) +
                    " vs " + std::to_string(len) + "): use a per-head budget");
  if (len == 0) return;
  for (auto& layer : heads_)
    for (auto& h : layer) {
      auto old_positions = h.positions.narrow(0, 0, len);
      auto fresh = torch::arange(len, old_positions.options());
      auto keys = h.k.narrow(1, 0, len);                                                    // [B, len, D]
      auto moved = rope_->apply(keys.unsqueeze(1), fresh - old_positions).squeeze(1);       // RoPE(new) = RoPE(new - old) RoPE(old)
      keys.copy_(moved);
      old_positions.copy_(fresh);
      h.min_position = 0;
      h.max_position = len - 1;
    }
  renumbered_away_ += committed_ - len;
  committed_ = len;
}

void CompactedCache::truncate(int64_t length) {
  if (length < 0 || length > committed_) throw Error("CompactedCache::truncate: length outside the committed tokens");
  for (auto& layer : heads_)
    for (auto& h : layer) {
      // Positions are ascending: keep the prefix of the list below `length`.
      const auto pos = h.positions.narrow(0, 0, h.len).to(torch::kCPU);
      h.len = (pos < length).sum().item<int64_t>();
      h.max_position = h.len > 0 ? pos[h.len - 1].item<int64_t>() : -1;
    }
  committed_ = length;
}

void CompactedCache::reset() {
  for (auto& layer : heads_)
    for (auto& h : layer) {
      h.len = 0;
      h.max_position = -1;
    }
  committed_ = 0;
  renumbered_away_ = 0;
}

}  // namespace echokv
