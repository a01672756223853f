#include "compress/low_rank_cache.h"

#include "cache/growable.h"

#include <cmath>

#include "core/error.h"

namespace echokv {

std::shared_ptr<LowRankBases> LowRankBases::from_model(const LlamaModel& model, const LowRankOptions& o) {
  const auto& c = model.config();
  const int64_t hkv = c.num_key_value_heads, D = c.head_dim;
  const int64_t g = o.group_heads == 0 ? hkv : o.group_heads;
  if (g <= 0 || hkv % g != 0)
    throw Error("low-rank cache: group_heads " + std::to_string(o.group_heads) + " must divide the " +
                std::to_string(hkv) + " KV heads");
  if (!(o.ratio > 0 && o.ratio <= 1)) throw Error("low-rank cache: ratio must be in (0, 1]");
  auto b = std::make_shared<LowRankBases>();
  b->group_heads = g;
  b->groups = hkv / g;
  b->rank = std::max<int64_t>(1, std::llround(o.ratio * static_cast<double>(g * D)));
  b->rank = std::min(b->rank, std::min<int64_t>(g * D, c.hidden_size));
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    for (int kind = 0; kind < 2; ++kind) {
      const torch::Tensor& w = kind == 0 ? model.layer(l).k_proj : model.layer(l).v_proj;  // [Hkv*D, H]
      std::vector<torch::Tensor> per_group;
      for (int64_t gi = 0; gi < b->groups; ++gi) {
        auto rows = w.slice(0, gi * g * D, (gi + 1) * g * D).to(torch::kCPU, torch::kFloat64);
        auto svd = torch::linalg_svd(rows, /*full_matrices=*/false);
        per_group.push_back(std::get<0>(svd).slice(1, 0, b->rank));  // U_r [g*D, r]
      }
      auto basis = torch::stack(per_group).to(w.device(), model.dtype()).contiguous();  // [G, g*D, r]
      (kind == 0 ? b->k : b->v).push_back(basis);
    }
  }
  return b;
}

LowRankCache::LowRankCache(const ModelConfig& config, std::shared_ptr<const Rope> rope,
                           std::shared_ptr<const LowRankBases> bases, int64_t batch, const LowRankOptions& options,
                           torch::Device device, torch::ScalarType dtype)
    : config_(config),
      rope_(std::move(rope)),
      bases_(std::move(bases)),
      batch_(batch),
      options_(options),
      capacity_(std::max<int64_t>(1, options.capacity)) {
  if (static_cast<int64_t>(bases_->k.size()) != config.num_hidden_layers)
    throw Error("LowRankCache: bases are for another model (layer count differs)");
  if (options_.chunk_tokens <= 0) throw Error("LowRankCache: chunk_tokens must be positive");
  auto opts = torch::TensorOptions().dtype(dtype).device(device);
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    zk_.push_back(torch::empty({batch_, bases_->groups, capacity_, bases_->rank}, opts));
    zv_.push_back(torch::empty({batch_, bases_->groups, capacity_, bases_->rank}, opts));
  }
  layer_length_.assign(config.num_hidden_layers, 0);
  positions_ = torch::arange(capacity_, torch::TensorOptions().dtype(torch::kInt64).device(device));
}

torch::Tensor LowRankCache::to_latent(const torch::Tensor& x, const torch::Tensor& basis) const {
  const int64_t B = x.size(0), T = x.size(2), D = x.size(3), G = bases_->groups, g = bases_->group_heads;
  // [B, Hkv, T, D] -> [B, G, T, g*D] (a group's heads side by side, as the k_proj rows are)
  auto f = x.reshape({B, G, g, T, D}).permute({0, 1, 3, 2, 4}).reshape({B, G, T, g * D});
  return torch::matmul(f, basis.unsqueeze(0));  // [B, G, T, r]
}

torch::Tensor LowRankCache::from_latent(const torch::Tensor& z, const torch::Tensor& basis) const {
  const int64_t B = z.size(0), n = z.size(2), G = bases_->groups, g = bases_->group_heads, D = config_.head_dim;
  auto f = torch::matmul(z, basis.transpose(1, 2).unsqueeze(0));  // [B, G, n, g*D]
  return f.reshape({B, G, n, g, D}).permute({0, 1, 3, 2, 4}).reshape({B, G * g, n, D});
}

void LowRankCache::grow(int64_t needed) {
  const int64_t cap = doubled_capacity(capacity_, needed);
  for (size_t l = 0; l < zk_.size(); ++l)
    for (auto* buf : {&zk_[l], &zv_[l]}) *buf = resized_along(*buf, 2, layer_length_[l], cap);
  positions_ = torch::arange(cap, positions_.options());
  capacity_ = cap;
}

void LowRankCache::append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v, const torch::Tensor& positions) {
  const int64_t t = k_pre_rope.size(2), start = layer_length_[layer];
  if (k_pre_rope.size(0) != batch_) throw Error("LowRankCache: batch differs from the cache's");
  if (start + t > capacity_) grow(start + t);
  zk_[layer].narrow(2, start, t).copy_(to_latent(k_pre_rope, bases_->k[layer]));
  zv_[layer].narrow(2, start, t).copy_(to_latent(v, bases_->v[layer]));
  layer_length_[layer] = start + t;
}

void LowRankCache::for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) {
  const int64_t n = layer_length_[layer];
  for (int64_t s = 0; s < n; s += options_.chunk_tokens) {
    const int64_t len = std::min(options_.chunk_tokens, n - s);
    KVBlock block;
    block.positions = positions_.narrow(0, s, len);
    block.k = rope_->apply(from_latent(zk_[layer].narrow(2, s, len), bases_->k[layer]), block.positions);
    block.v = from_latent(zv_[layer].narrow(2, s, len), bases_->v[layer]);
    block.min_position = s;
    block.max_position = s + len - 1;
    block.is_only = s == 0 && len == n;
    visit(block);
  }
}

void LowRankCache::advance(int64_t tokens) {
  committed_ += tokens;
  for (int64_t len : layer_length_)
    if (len != committed_) throw Error("LowRankCache: every layer must append each token once");
}

int64_t LowRankCache::bytes() const {
  int64_t total = 0;
  for (size_t l = 0; l < zk_.size(); ++l)
    total += 2 * layer_length_[l] * batch_ * bases_->groups * bases_->rank * zk_[l].element_size();
  return total;
}

int64_t LowRankCache::full_bytes() const {
  int64_t total = 0;
  for (size_t l = 0; l < zk_.size(); ++l)
    total += 2 * layer_length_[l] * batch_ * config_.num_key_value_heads * config_.head_dim * zk_[l].element_size();
  return total;
}

void LowRankCache::reset() {
  committed_ = 0;
  std::fill(layer_length_.begin(), layer_length_.end(), 0);
}

}  // namespace echokv
