// The seam between attention and KV storage. Attention hands each layer's new keys (before
// RoPE) and values to the cache, then asks for what the layer attends to as a sequence of
// blocks. A full cache yields one block; compressed caches (EchoKV, KVzip, low-rank, ...)
// may rebuild keys/values chunk by chunk, so a full-size K/V never has to exist at once.
// Attention code never knows which cache it talks to.
#pragma once
#include <cstdint>
#include <functional>

#include <torch/torch.h>

namespace echokv {

struct KVBlock {
  torch::Tensor k;          // [B, Hkv, n, D] keys with RoPE applied at their original positions
  torch::Tensor v;          // [B, Hkv, n, D]
  torch::Tensor positions;  // [n] int64, original token positions (for causal / window masks)
  int64_t min_position = 0;  // host copies of positions' range, so attention can skip masks
  int64_t max_position = 0;
  torch::Tensor bias;       // optional additive bias broadcastable to [B, Hkv, 1, n]; undefined = none
  bool is_only = false;     // true when this single block is everything the layer attends to
  // Per-head blocks (caches whose KV heads hold different tokens, e.g. KVzip): when head >= 0,
  // k and v hold only KV head `head` ([B, 1, n, D]), positions are that head's tokens, bias is
  // broadcastable to [B, 1, 1, n], and kv_heads gives the layer's number of KV heads.
  int64_t head = -1;
  int64_t kv_heads = 0;
  // Optional values given as a linear image of shared per-token inputs (EchoKV): when
  // v_latent is defined, v is unused and the value of head h at token j is
  // v_proj[h] . v_latent[:, j] + v_bias[h]. Attention then weights the inputs and projects
  // once per query (sum_j p_j (P x_j + c) = P (sum_j p_j x_j) + c sum_j p_j), instead of
  // rebuilding every token's value.
  torch::Tensor v_latent;   // [B, n, L]
  torch::Tensor v_proj;     // [Hkv, D, L]
  torch::Tensor v_bias;     // [Hkv, D] or undefined
};

class KVCache {
 public:
  virtual ~KVCache() = default;

  // Position of the next token: the number of tokens committed so far.
  virtual int64_t next_position() const = 0;

  // Stores one layer's new tokens. k_pre_rope, v: [B, Hkv, T, D]; positions: [T] int64.
  virtual void append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v,
                      const torch::Tensor& positions) = 0;

  // Caches that store a function of the layer's input rather than its keys and values
  // (CommonKV's shared latents) say so; the model then hands them the layer's normalised
  // input x [B, T, H] right before each append of the same tokens.
  virtual bool wants_layer_input() const { return false; }
  virtual void set_layer_input(int layer, const torch::Tensor& x) {
    (void)layer;
    (void)x;
  }

  // Calls `visit` for each block the layer attends to (including tokens just appended).
  virtual void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) = 0;

  // Called once per forward after every layer appended T tokens.
  virtual void advance(int64_t tokens) = 0;

  // Bytes of KV content stored now (what the method keeps, not buffer headroom).
  virtual int64_t bytes() const = 0;

  // Bytes a full-precision cache would need for the same tokens (for ratios).
  virtual int64_t full_bytes() const = 0;

  // Drops every token; keeps buffers for reuse.
  virtual void reset() = 0;
};

}  // namespace echokv
