#include "compress/minicache.h"

#include <cmath>

#include "cache/growable.h"
#include "core/error.h"

namespace echokv {

SlerpMerged slerp_merge(const torch::Tensor& a, const torch::Tensor& b, double t) {
  if (a.sizes() != b.sizes()) throw Error("slerp_merge: the two layers' states differ in shape");
  auto af = a.to(torch::kFloat32), bf = b.to(torch::kFloat32);
  SlerpMerged m;
  m.norm_a = af.norm(2, -1);
  m.norm_b = bf.norm(2, -1);
  // A zero state has no direction: it takes the other's (and both zero: the zero vector).
  auto ua = af / m.norm_a.clamp_min(1e-20).unsqueeze(-1);
  auto ub = bf / m.norm_b.clamp_min(1e-20).unsqueeze(-1);
  auto cos = (ua * ub).sum(-1).clamp(-1.0, 1.0);
  m.angle = torch::acos(cos);
  auto sin_w = torch::sin(m.angle);
  auto parallel = (sin_w < 1e-6).unsqueeze(-1);
  auto safe_sin = torch::where(sin_w < 1e-6, torch::ones_like(sin_w), sin_w);
  auto ca = (torch::sin((1.0 - t) * m.angle) / safe_sin).unsqueeze(-1);
  auto cb = (torch::sin(t * m.angle) / safe_sin).unsqueeze(-1);
  auto slerp = ca * ua + cb * ub;
  auto linear = (1.0 - t) * ua + t * ub;
  auto linear_norm = linear.norm(2, -1, true);
  linear = torch::where(linear_norm > 1e-20, linear / linear_norm.clamp_min(1e-20), linear);
  auto direction = torch::where(parallel, linear, slerp);
  direction = torch::where((m.norm_a <= 1e-20).unsqueeze(-1), ub, direction);
  m.direction = torch::where((m.norm_b <= 1e-20).unsqueeze(-1), ua, direction);
  return m;
}

namespace {

// index [Hkv, n] int64 -> x [B, Hkv, N, D] gathered to [B, Hkv, n, D] (or [..., N] -> [..., n]).
torch::Tensor gather_tokens(const torch::Tensor& x, const torch::Tensor& index) {
  auto idx = index.unsqueeze(0).expand({x.size(0), index.size(0), index.size(1)});
  if (x.dim() == 4) return torch::gather(x, 2, idx.unsqueeze(-1).expand({x.size(0), index.size(0), index.size(1), x.size(3)}));
  return torch::gather(x, 2, idx);
}

}  // namespace

MiniCacheCache::MiniCacheCache(const ModelConfig& config, const FullCache& full, std::shared_ptr<const Rope> rope,
                               const MiniCacheLayout& layout, int64_t chunk_tokens)
    : rope_(std::move(rope)),
      layout_(layout),
      chunk_(chunk_tokens),
      layers_(config.num_hidden_layers),
      kv_heads_(config.num_key_value_heads),
      head_dim_(config.head_dim) {
  const int64_t n = layout.merge_tokens, total = full.next_position();
  if (chunk_ <= 0) throw Error("MiniCache: chunk_tokens must be positive");
  if (n < 0 || n > total) throw Error("MiniCache: merge range of " + std::to_string(n) + " tokens, cache holds " + std::to_string(total));
  if (layout.retained < 0 || layout.retained > n) throw Error("MiniCache: retained tokens must be in [0, merged range]");
  if (layout.start_layer < 0 || layout.start_layer > layers_) throw Error("MiniCache: start_layer outside the model's layers");
  if (!(layout.interpolation >= 0 && layout.interpolation <= 1)) throw Error("MiniCache: interpolation must be in [0, 1]");
  const auto k0 = full.keys(0);
  batch_ = k0.size(0);
  element_size_ = static_cast<int64_t>(k0.element_size());
  if (batch_ != 1 && layout.start_layer + 1 < layers_)
    throw Error("MiniCache: merged layers keep per-head token lists; batch must be 1 (got " + std::to_string(batch_) + ")");
  const auto dtype = k0.scalar_type();
  const auto pos_opts = torch::TensorOptions().dtype(torch::kInt64).device(k0.device());
  pair_of_.assign(static_cast<size_t>(layers_), -1);
  tails_.resize(static_cast<size_t>(layers_));
  const int64_t R = layout.retained;
  for (int64_t a = layout.start_layer; a + 1 < layers_ && n > 0; a += 2) {
    const int la = static_cast<int>(a), lb = static_cast<int>(a + 1);
    auto ka = full.keys(la).narrow(2, 0, n), kb = full.keys(lb).narrow(2, 0, n);
    auto va = full.values(la).narrow(2, 0, n), vb = full.values(lb).narrow(2, 0, n);
    const auto mk = slerp_merge(ka, kb, layout.interpolation), mv = slerp_merge(va, vb, layout.interpolation);
    // Distance of a token across the pair: the keys' angle + the values' angle, per KV head.
    auto distance = (mk.angle + mv.angle)[0];  // [Hkv, n]
    auto order = std::get<1>(torch::sort(distance, /*stable=*/true, /*dim=*/-1, /*descending=*/true));
    auto kept_idx = std::get<0>(torch::sort(order.narrow(1, 0, R), -1));
    auto merged_idx = std::get<0>(torch::sort(order.narrow(1, R, n - R), -1));
    Pair p;
    p.dir_k = gather_tokens(mk.direction, merged_idx).to(dtype);
    p.dir_v = gather_tokens(mv.direction, merged_idx).to(dtype);
    p.mag_k = torch::stack({gather_tokens(mk.norm_a, merged_idx), gather_tokens(mk.norm_b, merged_idx)}).to(dtype);
    p.mag_v = torch::stack({gather_tokens(mv.norm_a, merged_idx), gather_tokens(mv.norm_b, merged_idx)}).to(dtype);
    p.kept_k = torch::stack({gather_tokens(ka, kept_idx), gather_tokens(kb, kept_idx)});
    p.kept_v = torch::stack({gather_tokens(va, kept_idx), gather_tokens(vb, kept_idx)});
    p.merged_pos = merged_idx.to(pos_opts);
    p.kept_pos = kept_idx.to(pos_opts);
    HostPositions host;
    auto merged_cpu = merged_idx.to(torch::kCPU).contiguous(), kept_cpu = kept_idx.to(torch::kCPU).contiguous();
    for (int64_t h = 0; h < kv_heads_; ++h) {
      const int64_t* m = merged_cpu[h].data_ptr<int64_t>();
      const int64_t* k = kept_cpu[h].data_ptr<int64_t>();
      host.merged.emplace_back(m, m + (n - R));
      host.kept.emplace_back(k, k + R);
    }
    pair_of_[static_cast<size_t>(la)] = pair_of_[static_cast<size_t>(lb)] = static_cast<int64_t>(pairs_.size());
    pairs_.push_back(std::move(p));
    host_positions_.push_back(std::move(host));
  }
  for (int64_t l = 0; l < layers_; ++l) {
    Tail& tail = tails_[static_cast<size_t>(l)];
    tail.begin = pair_of_[static_cast<size_t>(l)] >= 0 ? n : 0;
    tail.len = total - tail.begin;
    const int64_t cap = std::max<int64_t>(tail.len + 64, 64);
    tail.k = torch::empty({batch_, kv_heads_, cap, head_dim_}, k0.options());
    tail.v = torch::empty({batch_, kv_heads_, cap, head_dim_}, k0.options());
    if (tail.len > 0) {
      tail.k.narrow(2, 0, tail.len).copy_(full.keys(static_cast<int>(l)).narrow(2, tail.begin, tail.len));
      tail.v.narrow(2, 0, tail.len).copy_(full.values(static_cast<int>(l)).narrow(2, tail.begin, tail.len));
    }
  }
  committed_ = total;
}

void MiniCacheCache::append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v,
                            const torch::Tensor& positions) {
  if (k_pre_rope.size(0) != batch_) throw Error("MiniCache: batch differs from the cache's");
  Tail& tail = tails_[static_cast<size_t>(layer)];
  const int64_t t = k_pre_rope.size(2);
  tail.k = grown_along(tail.k, 2, tail.len, tail.len + t);
  tail.v = grown_along(tail.v, 2, tail.len, tail.len + t);
  tail.k.narrow(2, tail.len, t).copy_(rope_->apply(k_pre_rope, positions));
  tail.v.narrow(2, tail.len, t).copy_(v);
  tail.len += t;
}

void MiniCacheCache::visit_pair_part(const Pair& pair, int index, int64_t head,
                                     const std::function<void(const KVBlock&)>& visit) const {
  const auto& host = host_positions_[static_cast<size_t>(&pair - pairs_.data())];
  const auto& merged = host.merged[static_cast<size_t>(head)];
  const int64_t m = static_cast<int64_t>(merged.size());
  for (int64_t s = 0; s < m; s += chunk_) {
    const int64_t len = std::min(chunk_, m - s);
    KVBlock b;
    b.k = pair.dir_k.narrow(1, head, 1).narrow(2, s, len) * pair.mag_k[index].narrow(1, head, 1).narrow(2, s, len).unsqueeze(-1);
    b.v = pair.dir_v.narrow(1, head, 1).narrow(2, s, len) * pair.mag_v[index].narrow(1, head, 1).narrow(2, s, len).unsqueeze(-1);
    b.positions = pair.merged_pos[head].narrow(0, s, len);
    b.min_position = merged[static_cast<size_t>(s)];
    b.max_position = merged[static_cast<size_t>(s + len - 1)];
    b.head = head;
    b.kv_heads = kv_heads_;
    visit(b);
  }
  const auto& kept = host.kept[static_cast<size_t>(head)];
  if (kept.empty()) return;
  KVBlock b;
  b.k = pair.kept_k[index].narrow(1, head, 1);
  b.v = pair.kept_v[index].narrow(1, head, 1);
  b.positions = pair.kept_pos[head];
  b.min_position = kept.front();
  b.max_position = kept.back();
  b.head = head;
  b.kv_heads = kv_heads_;
  visit(b);
}

void MiniCacheCache::for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) {
  const int64_t p = pair_of_[static_cast<size_t>(layer)];
  if (p >= 0) {
    const Pair& pair = pairs_[static_cast<size_t>(p)];
    const int index = layer == static_cast<int>(layout_.start_layer + 2 * p) ? 0 : 1;
    for (int64_t h = 0; h < kv_heads_; ++h) visit_pair_part(pair, index, h, visit);
  }
  // Whole tokens: one block for all heads in a whole layer; per head in a merged one (attention
  // takes a layer's blocks all per head or all full width).
  const Tail& tail = tails_[static_cast<size_t>(layer)];
  for (int64_t s = 0; s < tail.len; s += chunk_) {
    const int64_t len = std::min(chunk_, tail.len - s);
    KVBlock b;
    b.positions = torch::arange(tail.begin + s, tail.begin + s + len,
                                torch::TensorOptions().dtype(torch::kInt64).device(tail.k.device()));
    b.min_position = tail.begin + s;
    b.max_position = tail.begin + s + len - 1;
    if (p < 0) {
      b.k = tail.k.narrow(2, s, len);
      b.v = tail.v.narrow(2, s, len);
      b.is_only = s == 0 && len == tail.len && tail.begin == 0;
      visit(b);
      continue;
    }
    b.kv_heads = kv_heads_;
    for (int64_t h = 0; h < kv_heads_; ++h) {
      b.k = tail.k.narrow(1, h, 1).narrow(2, s, len);
      b.v = tail.v.narrow(1, h, 1).narrow(2, s, len);
      b.head = h;
      visit(b);
    }
  }
}

void MiniCacheCache::advance(int64_t tokens) {
  committed_ += tokens;
  for (const auto& tail : tails_)
    if (tail.begin + tail.len != committed_) throw Error("MiniCache: every layer must append each token once");
}

int64_t MiniCacheCache::bytes() const {
  int64_t elements = 0;
  for (const auto& p : pairs_)
    elements += p.dir_k.numel() + p.dir_v.numel() + p.mag_k.numel() + p.mag_v.numel() + p.kept_k.numel() + p.kept_v.numel();
  for (const auto& tail : tails_) elements += 2 * tail.len * batch_ * kv_heads_ * head_dim_;
  return elements * element_size_;
}

int64_t MiniCacheCache::full_bytes() const { return 2 * committed_ * layers_ * batch_ * kv_heads_ * head_dim_ * element_size_; }

std::pair<torch::Tensor, torch::Tensor> MiniCacheCache::restored(int layer) const {
  const int64_t p = pair_of_[static_cast<size_t>(layer)];
  const Tail& tail = tails_[static_cast<size_t>(layer)];
  if (p < 0) {
    const int64_t n = std::min(layout_.merge_tokens, tail.len);
    return {tail.k.narrow(2, 0, n), tail.v.narrow(2, 0, n)};
  }
  const Pair& pair = pairs_[static_cast<size_t>(p)];
  const int index = layer == static_cast<int>(layout_.start_layer + 2 * p) ? 0 : 1;
  const int64_t n = layout_.merge_tokens;
  auto k = torch::empty({batch_, kv_heads_, n, head_dim_}, tail.k.options());
  auto v = torch::empty_like(k);
  auto scatter = [&](torch::Tensor& out, const torch::Tensor& index_hn, const torch::Tensor& src) {
    auto idx = index_hn.unsqueeze(0).unsqueeze(-1).expand({batch_, kv_heads_, index_hn.size(1), head_dim_});
    out.scatter_(2, idx, src);
  };
  scatter(k, pair.merged_pos, pair.dir_k * pair.mag_k[index].unsqueeze(-1));
  scatter(v, pair.merged_pos, pair.dir_v * pair.mag_v[index].unsqueeze(-1));
  scatter(k, pair.kept_pos, pair.kept_k[index]);
  scatter(v, pair.kept_pos, pair.kept_v[index]);
  return {k, v};
}

void MiniCacheCache::reset() {
  pairs_.clear();
  host_positions_.clear();
  std::fill(pair_of_.begin(), pair_of_.end(), -1);
  for (auto& tail : tails_) tail.begin = tail.len = 0;
  layout_.merge_tokens = 0;
  committed_ = 0;
}

}  // namespace echokv
