// EchoKV's compressed KV cache behind the KVCache seam. What it stores, per layer and kind:
//   - global (plan): every token's full features, keys before RoPE (they also feed the
//     reconstructors of later layers);
//   - compressed: the first `sink` tokens and the last `recent` tokens in full; every older
//     token only as the plan's kept features. Tokens leaving the recent window are
//     compressed as they leave, after each forward (also during a chunked prefill, so peak
//     memory is the compressed size plus one chunk).
// At attention time the dropped features of old tokens are rebuilt chunk by chunk
// (Reconstructor, from the global source layers' stored features and the kept features),
// RoPE is applied at the original positions, and attention merges the chunks with an online
// softmax: no full-size K/V of a compressed layer exists for the whole context at once.
// bytes() counts exactly what is stored; full_bytes() what a full cache would hold.
#pragma once
#include <memory>
#include <vector>

#include "cache/kv_cache.h"
#include "echo/reconstructor.h"
#include "model/config.h"
#include "model/rope.h"

namespace echokv {

struct EchoCacheOptions {
  int64_t sink_tokens = 4;
  int64_t recent_tokens = 128;
  int64_t chunk_tokens = 2048;   // rebuild / attention block size
  int64_t capacity = 1024;       // initial token capacity (grows by doubling)
};

class EchoCache : public KVCache {
 public:
  // `reconstructor` must be on the cache's device; its plan must match the model's shape.
  EchoCache(const ModelConfig& config, std::shared_ptr<const Rope> rope,
            std::shared_ptr<const Reconstructor> reconstructor, int64_t batch, const EchoCacheOptions& options,
            torch::Device device, torch::ScalarType dtype);

  int64_t next_position() const override { return committed_; }
  void append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v,
              const torch::Tensor& positions) override;
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override;
  void advance(int64_t tokens) override;
  int64_t bytes() const override;
  int64_t full_bytes() const override;
  void reset() override;

  // What combinations (lib/methods: hybrid, echo_kvzip) read to wrap this cache:
  // a global store's features [B, n, Hkv*D] (keys before RoPE), a writable view of the storage;
  torch::Tensor global_features(int layer, KVKind kind);
  // the bytes (all batch rows) stored now for each token at positions begin .. begin + n of
  // (layer, kind): [n] int64 on CPU (all features, or the plan's kept ones in the middle);
  torch::Tensor stored_bytes(int layer, KVKind kind, int64_t begin, int64_t n) const;
  const Reconstructor& reconstructor() const { return *reconstructor_; }

  // Wall time spent rebuilding dropped features so far (for benchmarks: where time goes).
  double rebuild_seconds() const { return rebuild_seconds_; }

  // Stored bytes over full bytes as tokens -> infinity (the plan's ratio).
  double plan_ratio() const { return reconstructor_->plan().ratio(); }

 private:
  struct Store {               // one (layer, kind)
    bool global = true;
    torch::Tensor full;        // global: [B, cap, F]
    int64_t full_len = 0;
    torch::Tensor sink;        // compressed: [B, s, F]
    torch::Tensor recent;      // compressed: [B, r, F], the last r tokens
    torch::Tensor kept;        // compressed: [B, cap, kept] for tokens between sink and recent
    int64_t kept_len = 0;
  };
  Store& store(int layer, KVKind kind) { return stores_[layer * 2 + int(kind)]; }
  const Store& store(int layer, KVKind kind) const { return stores_[layer * 2 + int(kind)]; }
  void append_kind(int layer, KVKind kind, const torch::Tensor& features, int64_t first_position);
  void compress_overflow(int layer, KVKind kind);
  // Full features [B, len, F] of tokens [a, b) of (layer, kind); rebuilt where compressed.
  torch::Tensor features(int layer, KVKind kind, int64_t a, int64_t b) const;
  // The reconstructor's input [B, len, in] for compressed-middle tokens [a, b).
  torch::Tensor reconstructor_input(int layer, KVKind kind, int64_t a, int64_t b) const;
  bool in_middle(int layer, KVKind kind, int64_t a, int64_t b) const;

  ModelConfig config_;
  std::shared_ptr<const Rope> rope_;
  std::shared_ptr<const Reconstructor> reconstructor_;
  int64_t batch_;
  EchoCacheOptions options_;
  torch::TensorOptions opts_;
  std::vector<Store> stores_;
  // Compressed value layers: values = v_proj . input + v_bias, per KV head ([Hkv, D, in], [Hkv, D]).
  std::vector<torch::Tensor> v_proj_, v_bias_;
  std::vector<int64_t> layer_length_;
  int64_t committed_ = 0;
  mutable double rebuild_seconds_ = 0;
};

}  // namespace echokv
