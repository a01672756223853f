// Scaled dot-product attention over whatever a KVCache yields, written once for every cache:
// GQA without repeating K/V (queries of a group are stacked against their shared KV head),
// causal and sliding-window masks from original positions, online softmax across blocks.
// Where LibTorch has it (>= 2.1, see core/torch_compat.h) a single-block call without bias or
// latent values goes through the fused at::scaled_dot_product_attention.
#pragma once
#include <optional>

#include "cache/kv_cache.h"

namespace echokv {

struct QueryPositions {
  torch::Tensor positions;  // [Tq] int64 on the query's device
  int64_t min_position = 0;  // host copies of the range
  int64_t max_position = 0;
};

struct AttentionOptions {
  std::optional<int64_t> sliding_window;  // a query at i sees keys j with i - W < j <= i
  double scale = 1.0;                     // usually head_dim^-0.5
  bool fused = true;                      // allow the fused kernel where LibTorch has one
};

// How many attention calls in this process the fused kernel served (tests and benches read it).
int64_t fused_attention_calls();

// q: [B, Hq, Tq, D] with RoPE. Returns [B, Hq, Tq, D] in q's dtype.
torch::Tensor attend(const torch::Tensor& q, const QueryPositions& qpos, KVCache& cache, int layer,
                     const AttentionOptions& options);

// The same over explicit blocks (used by attend, by trainers and by tests).
torch::Tensor attend_blocks(const torch::Tensor& q, const QueryPositions& qpos,
                            const std::function<void(const std::function<void(const KVBlock&)>&)>& blocks,
                            const AttentionOptions& options);

}  // namespace echokv
