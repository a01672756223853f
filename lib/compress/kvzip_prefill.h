// KVzip's prompt path (arXiv 2505.23416): prefill [prefix, context] in a full cache, score the
// context pairs by context reconstruction (or take calibrated head scores), evict, then prefill
// the rest of the prompt (the question) into the compacted (or retain-mode masked) cache.
#pragma once
#include <memory>
#include <vector>

#include "cache/full_cache.h"
#include "cache/prepared_prompt.h"
#include "compress/kvzip_eviction.h"
#include "compress/kvzip_scoring.h"
#include "model/llama.h"

namespace echokv {

// What scoring needs besides the model: the repeat prompts in the model's tokenizer, and
// optionally the run's memo (one scoring pass per context serves every KVzip method).
struct KvzipScoring {
  std::shared_ptr<const KvzipPrompts> prompts;
  std::shared_ptr<KvzipScoreMemo> memo;  // may be null
};

// Pair scores of the context in `full` (which holds prefix + context = ids[0, span.context_end)):
// per layer float32 [Hkv, n_context]; from the memo when the same prefix, context and prompts
// were scored last (*reused = true).
std::vector<torch::Tensor> kvzip_context_scores(LlamaModel& model, const KvzipScoring& scoring, FullCache& full,
                                                const std::vector<int64_t>& ids, const PromptSpan& span,
                                                int64_t chunk_tokens, bool* reused);

// Fraction of true entries over every mask.
double kept_fraction(const std::vector<torch::Tensor>& keep);

// The prompt through KVzip keeping `context_ratio` of the context pairs (level / storage /
// chunk from `options`; head level uses `head_scores`, per layer [Hkv]). Needs span.context_end >= 0.
PreparedPrompt kvzip_prefill(LlamaModel& model, const KvzipOptions& options, double context_ratio,
                             const KvzipScoring& scoring, const std::vector<torch::Tensor>& head_scores,
                             const std::vector<int64_t>& ids, const PromptSpan& span, int64_t capacity, int64_t chunk);

// KVzip head level: max-merged head scores over calibration contexts (each given as token
// ids, prefixed by `prefix` ids such as BOS). Returns per layer [Hkv].
std::vector<torch::Tensor> kvzip_calibrate_heads(LlamaModel& model, const KvzipPrompts& prompts,
                                                 const std::vector<int64_t>& prefix,
                                                 const std::vector<std::vector<int64_t>>& contexts, int64_t chunk);

}  // namespace echokv
