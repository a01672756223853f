// Palu-style low-rank KV cache: per layer and group of g KV heads, the K and V projection
// weights W [g*D, H] are factored by SVD, W ~= U_r S_r V_r^T, and each token stores only the
// rank-r latent x V_r S_r (= K U_r, computed here from the projected keys, so the cache seam
// is unchanged); keys (before RoPE) and values are rebuilt as latent U_r^T at attention
// time, chunk by chunk, RoPE applied at the original positions. With r = g*D it is exact.
// Rank from the byte budget: r = round(ratio * g * D) for K and for V, so
// stored / full = r / (g*D) exactly.
#pragma once
#include <memory>
#include <vector>

#include "cache/kv_cache.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/rope.h"

namespace echokv {

struct LowRankOptions {
  double ratio = 0.5;         // stored bytes / full bytes
  int64_t group_heads = 0;    // KV heads per SVD group (0 = all heads of a layer: "joint")
  int64_t chunk_tokens = 2048;
  int64_t capacity = 1024;
};

struct LowRankBases {
  int64_t group_heads = 0, groups = 0, rank = 0;
  std::vector<torch::Tensor> k, v;  // per layer [G, g*D, r], orthonormal columns (U_r)

  // SVD of each layer's k_proj / v_proj rows per group, in float64, stored in the model's dtype.
  static std::shared_ptr<LowRankBases> from_model(const LlamaModel& model, const LowRankOptions& options);
};

class LowRankCache : public KVCache {
 public:
  LowRankCache(const ModelConfig& config, std::shared_ptr<const Rope> rope, std::shared_ptr<const LowRankBases> bases,
               int64_t batch, const LowRankOptions& options, torch::Device device, torch::ScalarType dtype);

  int64_t next_position() const override { return committed_; }
  void append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v, const torch::Tensor& positions) override;
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override;
  void advance(int64_t tokens) override;
  int64_t bytes() const override;
  int64_t full_bytes() const override;
  void reset() override;

 private:
  void grow(int64_t needed);
  torch::Tensor to_latent(const torch::Tensor& x, const torch::Tensor& basis) const;   // [B,Hkv,T,D] -> [B,G,T,r]
  torch::Tensor from_latent(const torch::Tensor& z, const torch::Tensor& basis) const;  // [B,G,n,r] -> [B,Hkv,n,D]

  ModelConfig config_;
  std::shared_ptr<const Rope> rope_;
  std::shared_ptr<const LowRankBases> bases_;
  int64_t batch_;
  LowRankOptions options_;
  int64_t capacity_;
  std::vector<torch::Tensor> zk_, zv_;   // per layer [B, G, capacity, r]
  std::vector<int64_t> layer_length_;
  int64_t committed_ = 0;
  torch::Tensor positions_;
};

}  // namespace echokv
