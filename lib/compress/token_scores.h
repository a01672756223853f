// Token scorers for one-shot eviction of a compressed range (kvpress's ScorerPress family):
// for each layer, a float32 CPU score [Hkv, m] per token of the range [begin, end) of a
// prefilled FullCache; higher = more worth keeping. Selections from scores (per-head top-k,
// AdaKV's head-adaptive top-k, ChunkKV's chunks, PyramidKV's layer budgets) live in
// compress/token_budgets.h; the methods that combine them in lib/methods/.
//
//   knorm               -||k||                               (Devoto et al. 2024)
//   random              uniform [0, 1), seeded per layer      (the floor)
//   keydiff             -cos(k, mean of the unit keys)        (KeyDiff, Park et al. 2025)
//   tova                the range's last query's attention, averaged over all query heads
//                       (the same for every KV head; that token itself always kept) (TOVA, Oren et al. 2024)
//   snapkv              kvpress's SnapKVPress on the range: its last 64 queries' mean attention,
//                       pooled (kernel 5), averaged over the GQA group; those 64 tokens kept (Li et al. 2024)
//   observed_attention  attention received from every query of the prompt up to `end`, divided by
//                       the number of queries that see the token, averaged over the GQA group (H2O-style)
//   expected_attention  the attention the next 512 queries are expected to pay, from the mean and
//                       covariance of the prompt's pre-RoPE queries, times ||v|| (kvpress's
//                       ExpectedAttentionPress; compress/expected_attention.h)
//   lagkv               LagKV (Liang et al. 2025): each 128-token partition's keys and values
//                       min-max normalised by the next partition's; the std over channels, softmax in
//                       the partition, ranked (kvpress's LagKVPress)
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "cache/full_cache.h"
#include "model/llama.h"

namespace echokv {

// What a scorer reads beyond the cache's keys and values.
enum class ScorerNeeds { kKeys, kWindowQueries, kAllQueries };

struct ScoringInputs {
  const FullCache* cache = nullptr;  // holds tokens 0 .. end-1 (at least)
  int64_t begin = 0, end = 0;        // the range scored
  double scale = 1.0;                // attention scale
  uint64_t seed = 0;                 // random
  const std::vector<torch::Tensor>* window_queries = nullptr;  // per layer [1, Hq, w, D], RoPE'd, of tokens end-w .. end-1
  const std::vector<torch::Tensor>* observed = nullptr;    // kAllQueries: per layer float32 [Hkv, end]
};

// ExpectedAttention's settings (kvpress's names: n_future_positions, n_sink, use_covariance,
// use_vnorm, epsilon; its defaults).
struct ExpectedAttentionOptions {
  int64_t future = 512;
  int64_t sinks = 4;
  bool covariance = true;
  bool value_norm = true;
  double epsilon = 0.0;
};

// What a scorer may be configured with beyond the table (methods read these from YAML).
struct ScorerSettings {
  ExpectedAttentionOptions expected_attention;
};

// A scorer that watches the whole prefill (kAllQueries): on_qkv sees every chunk before it is
// appended to the cache; take_scores() then gives per layer float32 CPU [Hkv, tokens].
class PromptScoreObserver : public LayerObserver {
 public:
  virtual std::vector<torch::Tensor> take_scores() = 0;
};
using PromptScoreObserverFactory = std::function<std::unique_ptr<PromptScoreObserver>(
    const LlamaModel&, const FullCache&, int64_t tokens, const ScorerSettings&)>;

struct TokenScorer {
  std::string name;
  ScorerNeeds needs;
  std::function<torch::Tensor(int layer, const ScoringInputs&)> score;  // -> float32 CPU [Hkv, m]
  int64_t window = 0;  // kWindowQueries: the queries it reads (the range's last `window` tokens)
  PromptScoreObserverFactory observer;  // kAllQueries: what fills ScoringInputs::observed
  // Scorers of stored states alone (keys, values [Hkv, n, D] of positions 0..n-1 -> [Hkv, n]):
  // what a cache can re-score during generation (DecodingPress); empty for query-based ones.
  std::function<torch::Tensor(const torch::Tensor& keys, const torch::Tensor& values, uint64_t seed, int layer)> from_states;
};

// Every scorer, one table (the wrappers' `scorer:` option names one of these).
const std::vector<TokenScorer>& token_scorers();
const TokenScorer* find_token_scorer(const std::string& name);
std::string token_scorer_names();  // "knorm, random, ..." for error messages

// The scorers on plain tensors. keys: [Hkv, m, D] (any float dtype) -> float32 [Hkv, m].
torch::Tensor knorm_scores(const torch::Tensor& keys);
torch::Tensor keydiff_scores(const torch::Tensor& keys);
torch::Tensor random_scores(int64_t kv_heads, int64_t tokens, uint64_t seed, int layer);
// query: [Hq, D] of the last token (position end-1); keys: [Hkv, end, D] (positions 0..end-1).
// Returns the scores of tokens begin..end-1: [Hkv, end - begin].
torch::Tensor tova_scores(const torch::Tensor& query, const torch::Tensor& keys, double scale, int64_t begin);
// queries: [Hq, w, D] of positions end-w .. end-1; keys: [Hkv, end, D]. Scores of begin..end-1
// (the window's w tokens score above every other); needs end - begin > w.
torch::Tensor snapkv_window_scores(const torch::Tensor& queries, const torch::Tensor& keys, double scale, int64_t kernel,
                                   int64_t begin);
// keys, values: [Hkv, n, D] of positions 0..n-1 -> float32 [Hkv, n]. The first `sinks` and the
// last partial + full partition score 1 (kept first); shorter than sinks + 2 x lag: the ramp
// (i - sinks) / (n - sinks) after sinks scoring 1, as kvpress returns.
// CriticalKV (Feng et al. 2025, "Identify Critical KV Cache in LLM Inference from an Output
// Perturbation Perspective"; kvpress's CriticalKVPress): ||W_o^h v_j||_1 per query head,
// averaged over the GQA group. values: [Hkv, m, D]; o_proj: [H, Hq*D] -> float32 [Hkv, m].
torch::Tensor projected_value_l1_norms(const torch::Tensor& values, const torch::Tensor& o_proj);
// Its two-stage rescoring: each head's top `first_stage` tokens by `scores` stay first (float
// max); the rest score (scores + epsilon) x projected norm. scores, norms: [Hkv, m].
torch::Tensor critical_scores(const torch::Tensor& scores, const torch::Tensor& norms, int64_t first_stage, double epsilon);
torch::Tensor lagkv_scores(const torch::Tensor& keys, const torch::Tensor& values, int64_t sinks, int64_t lag);

// Accumulates ObservedAttention's statistic while a prompt is prefilled into `cache` (chunked
// forwards with this observer): per layer float32 [Hkv, n] = sum over query heads of a group
// and over queries i >= j of softmax attention a_ij, / (group size x (n - j)) at the end.
class ObservedAttentionObserver : public PromptScoreObserver {
 public:
  ObservedAttentionObserver(const LlamaModel& model, const FullCache& cache, int64_t tokens);
  void on_qkv(int layer, const torch::Tensor& q_pre_rope, const torch::Tensor& k_pre_rope, const torch::Tensor& v,
              const torch::Tensor& positions) override;
  // The mean attention each token received: per layer [Hkv, tokens].
  std::vector<torch::Tensor> take_scores() override;

 private:
  const LlamaModel& model_;
  const FullCache& cache_;
  int64_t tokens_;
  std::vector<torch::Tensor> sums_;  // per layer float32 CPU [Hkv, tokens]
};

}  // namespace echokv
