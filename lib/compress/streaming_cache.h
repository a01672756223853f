// StreamingLLM-style token eviction (Xiao et al., "Efficient Streaming Language Models with
// Attention Sinks"): keep the first `sink` tokens and the most recent `window` tokens, drop
// the middle. Keys keep their original RoPE positions (as kvpress's StreamingLLM press; the
// paper's position re-assignment is not used). Tokens of the current forward are always
// visible to each other (prefill chunks attend within themselves); eviction happens when the
// forward commits (advance). Storage: sink slots + a ring of `window` slots per layer, so a
// decode step copies one token, never the cache.
// Budget: with `ratio` > 0 the window is chosen per request from its prompt length P:
// window = max(0, round(ratio * P) - sink), so stored / full = ratio at the end of the prompt.
#pragma once
#include <memory>
#include <vector>

#include "cache/kv_cache.h"
#include "model/config.h"
#include "model/rope.h"

namespace echokv {

struct StreamingOptions {
  int64_t sink_tokens = 4;
  int64_t window_tokens = 128;
  double ratio = 0;  // > 0: window from the prompt length (see above)
};

class StreamingCache : public KVCache {
 public:
  StreamingCache(const ModelConfig& config, std::shared_ptr<const Rope> rope, int64_t batch, int64_t sink,
                 int64_t window, torch::Device device, torch::ScalarType dtype);

  int64_t next_position() const override { return committed_; }
  void append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v, const torch::Tensor& positions) override;
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override;
  void advance(int64_t tokens) override;
  int64_t bytes() const override;
  int64_t full_bytes() const override;
  void reset() override;
  int64_t window() const { return window_; }

 private:
  std::shared_ptr<const Rope> rope_;
  int64_t batch_, kv_heads_, head_dim_, sink_, window_;
  std::vector<torch::Tensor> k_, v_;          // per layer [B, Hkv, sink + window, D] (keys with RoPE)
  torch::Tensor slot_positions_;              // [sink + window] int64, position held by each slot
  std::vector<torch::Tensor> pk_, pv_, ppos_;  // per layer: this forward's tokens
  int64_t committed_ = 0;
  int64_t element_size_;
};

}  // namespace echokv
