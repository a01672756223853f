#include "cache/full_cache.h"

#include "cache/growable.h"

#include "core/error.h"

namespace echokv {

FullCache::FullCache(const ModelConfig& config, std::shared_ptr<const Rope> rope, int64_t batch,
                     int64_t capacity, torch::Device device, torch::ScalarType dtype)
    : rope_(std::move(rope)),
      batch_(batch),
      kv_heads_(config.num_key_value_heads),
      head_dim_(config.head_dim),
      capacity_(std::max<int64_t>(capacity, 1)) {
  auto opts = torch::TensorOptions().dtype(dtype).device(device);
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    k_.push_back(torch::empty({batch_, kv_heads_, capacity_, head_dim_}, opts));
    v_.push_back(torch::empty({batch_, kv_heads_, capacity_, head_dim_}, opts));
  }
  layer_length_.assign(config.num_hidden_layers, 0);
  positions_ = torch::arange(capacity_, torch::TensorOptions().dtype(torch::kInt64).device(device));
}

void FullCache::grow(int64_t needed) {
  const int64_t cap = doubled_capacity(capacity_, needed);
  for (size_t l = 0; l < k_.size(); ++l) {
    k_[l] = resized_along(k_[l], 2, layer_length_[l], cap);
    v_[l] = resized_along(v_[l], 2, layer_length_[l], cap);
  }
  positions_ = torch::arange(cap, positions_.options());
  capacity_ = cap;
}

void FullCache::append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v,
                       const torch::Tensor& positions) {
  const int64_t t = k_pre_rope.size(2);
  const int64_t start = layer_length_[layer];
  if (k_pre_rope.size(0) != batch_)
    throw Error("FullCache: batch " + std::to_string(k_pre_rope.size(0)) + " != cache batch " + std::to_string(batch_));
  if (start + t > capacity_) grow(start + t);
  k_[layer].narrow(2, start, t).copy_(rope_->apply(k_pre_rope, positions));
  v_[layer].narrow(2, start, t).copy_(v);
  layer_length_[layer] = start + t;
}

void FullCache::for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) {
  const int64_t n = layer_length_[layer];
  KVBlock block;
  block.k = k_[layer].narrow(2, 0, n);
  block.v = v_[layer].narrow(2, 0, n);
  block.positions = positions_.narrow(0, 0, n);
  block.min_position = 0;
  block.max_position = n - 1;
  block.is_only = true;
  visit(block);
}

void FullCache::advance(int64_t tokens) {
  committed_ += tokens;
  for (int64_t len : layer_length_)
    if (len != committed_)
      throw Error("FullCache: a layer holds " + std::to_string(len) + " tokens, expected " +
                  std::to_string(committed_) + " (every layer must append each token once)");
}

int64_t FullCache::bytes() const {
  if (k_.empty()) return 0;
  int64_t per_token_layer = 2 * batch_ * kv_heads_ * head_dim_ * k_[0].element_size();
  int64_t total = 0;
  for (int64_t len : layer_length_) total += len * per_token_layer;
  return total;
}

void FullCache::truncate(int64_t length) {
  if (length < 0 || length > committed_) throw Error("FullCache::truncate: length outside the committed tokens");
  committed_ = length;
  std::fill(layer_length_.begin(), layer_length_.end(), length);
}

void FullCache::reset() {
  committed_ = 0;
  std::fill(layer_length_.begin(), layer_length_.end(), 0);
}

torch::Tensor FullCache::keys(int layer) const { return k_[layer].narrow(2, 0, layer_length_[layer]); }
torch::Tensor FullCache::values(int layer) const { return v_[layer].narrow(2, 0, layer_length_[layer]); }

}  // namespace echokv
