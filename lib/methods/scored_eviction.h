// One-shot token eviction from a scorer (compress/token_scores.h) and a budget rule
// (compress/token_budgets.h), the shape of kvpress's ScorerPress and its AdaKV / ChunkKV
// wrappers. Query-agnostic: with a context / question split the context is scored and
// compressed before the question is prefilled (kvpress's pipeline), else the whole prompt;
// the prefix before the context and the question stay whole. Kept pairs are compacted per
// head (CompactedCache), so head budgets that differ really store less.
// Size knob: `ratio` = stored / full bytes after the prompt; the range keeps floor(f x m)
// tokens per head on average, f = (ratio x n - (n - m)) / m (m its length, n the prompt's),
// clamped to [0, 1] with a note: exact up to one token per head (a chunk for ChunkKV).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "compress/token_scores.h"
#include "methods/method.h"

namespace echokv {

enum class EvictionBudget { kPerHead, kHeadAdaptive, kChunks };

struct ScoredEvictionOptions {
  const TokenScorer* scorer = nullptr;
  double ratio = 0.5;
  EvictionBudget budget = EvictionBudget::kPerHead;
  double alpha_safeguard = 0.2;  // kHeadAdaptive
  int64_t chunk_length = 20;     // kChunks
  uint64_t seed = 0;             // the random scorer
  ScorerSettings scorer_settings;  // expected_attention's options
  // CriticalKV's rescoring (compress/token_scores.h critical_scores) before the budget rule:
  // each head's top floor(first_stage_ratio x keep) tokens first, the rest by score x ||W_o v||_1.
  bool critical = false;
  double critical_epsilon = 1e-4, first_stage_ratio = 0.5;
  // KeyRerotation: the compacted cache renumbered to contiguous positions before the question
  // (CompactedCache::renumber_contiguous; per-head budgets only).
  bool rerotate = false;
};

// Reads `ratio` / `compression_ratio`, and the scorer's own options: `seed` (random);
// `future_positions, sink_tokens, covariance, value_norm, score_epsilon` (expected_attention).
std::unique_ptr<Method> make_scored_eviction_method(MethodOptions& m, ScoredEvictionOptions options);
// The per-head top-k method of one scorer (knorm, random, keydiff, ...): its file is one line.
std::unique_ptr<Method> make_scorer_method(MethodOptions& m, const std::string& scorer);
// Reads `scorer:` (a name from token_scorers(), default `fallback`) for the wrappers.
const TokenScorer& read_token_scorer(MethodOptions& m, const std::string& fallback);

// The range's tokens kept per head: floor(f x m) as above; `note` says when f was clamped.
int64_t tokens_kept_in_range(double ratio, int64_t prompt_tokens, int64_t range_tokens, std::string* note);

}  // namespace echokv
