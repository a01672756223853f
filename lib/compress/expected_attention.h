// ExpectedAttention (kvpress's ExpectedAttentionPress, Devoto et al. 2025, "Expected
// Attention: KV cache compression by estimating attention from future queries
// distribution"): the attention the next `future` queries are expected to pay each key,
// estimated from the prompt's own pre-RoPE queries.
//   mu, S   mean and covariance (1/N, population) of the pre-RoPE queries of positions
//           sinks .. n-1, per query head, accumulated chunk by chunk during the prefill
//   R       the RoPE rotation averaged over positions n .. n+future-1; mu' = R mu, S' = R S R^T
//   z_j     scale x k_j . mu' + scale^2 / 2 x k_j^T S' k_j   (log E[exp(scale q.k_j)] for a
//           Gaussian q; kvpress writes scale = 1/sqrt(d))
//   score   softmax_j over keys sinks .. n-1, averaged over the GQA group, times ||v_j||_2;
//           the first `sinks` tokens score max + 1.
// Keys are the cache's (post-RoPE) keys, as in kvpress. Options: ExpectedAttentionOptions
// (compress/token_scores.h).
#pragma once
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "compress/token_scores.h"

namespace echokv {

// The averaged rotation for positions [start, start + count): [D, D] float64, R x = the mean of
// the rotated x (rotate-half RoPE with the model's frequencies and scaling).
torch::Tensor average_rope_rotation(const Rope& rope, int64_t start, int64_t count);

// The scores on plain tensors. mean: [Hq, D], cov: [Hq, D, D] (already rotated, float64);
// keys, values: [Hkv, n, D] -> float32 [Hkv, n].
torch::Tensor expected_attention_scores(const torch::Tensor& mean, const torch::Tensor& cov, const torch::Tensor& keys,
                                        const torch::Tensor& values, double scale, const ExpectedAttentionOptions& o);

class ExpectedAttentionObserver : public PromptScoreObserver {
 public:
  ExpectedAttentionObserver(const LlamaModel& model, const FullCache& cache, int64_t tokens, ExpectedAttentionOptions o);
  void on_qkv(int layer, const torch::Tensor& q_pre_rope, const torch::Tensor& k_pre_rope, const torch::Tensor& v,
              const torch::Tensor& positions) override;
  std::vector<torch::Tensor> take_scores() override;  // per layer float32 [Hkv, tokens]

 private:
  const LlamaModel& model_;
  const FullCache& cache_;
  int64_t tokens_;
  ExpectedAttentionOptions o_;
  std::vector<torch::Tensor> sum_, outer_;  // per layer float64 CPU [Hq, D], [Hq, D, D]
  std::vector<int64_t> count_;
};

}  // namespace echokv
