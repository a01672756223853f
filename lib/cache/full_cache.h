// The full-precision KV cache: preallocated [B, Hkv, capacity, D] buffers per layer,
// written in place; keys stored with RoPE applied. Grows by doubling only if a request
// outlives its capacity (never per step).
#pragma once
#include <memory>
#include <vector>

#include "cache/kv_cache.h"
#include "model/config.h"
#include "model/rope.h"

namespace echokv {

class FullCache : public KVCache {
 public:
  FullCache(const ModelConfig& config, std::shared_ptr<const Rope> rope, int64_t batch,
            int64_t capacity, torch::Device device, torch::ScalarType dtype);

  int64_t next_position() const override { return committed_; }
  void append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v,
              const torch::Tensor& positions) override;
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override;
  void advance(int64_t tokens) override;
  int64_t bytes() const override;
  int64_t full_bytes() const override { return bytes(); }
  void reset() override;

  int64_t capacity() const { return capacity_; }
  // Drops every token from position `length` on (e.g. a scoring pass's temporary tokens).
  void truncate(int64_t length);
  // Views of what layer `layer` holds: [B, Hkv, length, D] (keys with RoPE).
  torch::Tensor keys(int layer) const;
  torch::Tensor values(int layer) const;

 private:
  void grow(int64_t needed);

  std::shared_ptr<const Rope> rope_;
  int64_t batch_, kv_heads_, head_dim_, capacity_;
  std::vector<torch::Tensor> k_, v_;      // per layer [B, Hkv, capacity, D]
  std::vector<int64_t> layer_length_;     // tokens written per layer (committed + pending)
  int64_t committed_ = 0;
  torch::Tensor positions_;               // [capacity] int64 = 0..capacity-1
};

}  // namespace echokv
