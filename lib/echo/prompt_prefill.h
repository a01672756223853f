// Prefills a request's prompt into the cache of the selected method. Methods that compress
// after looking at the prompt run their scoring pass here:
//   kvzip  : prefill [prefix, context] in a full cache, context-reconstruction scores, evict
//            context pairs (pair / uniform / head level), then prefill the rest of the prompt
//            (question) into the compacted (or retain-mode masked) cache
//   snapkv : prefill the prompt, the last `window` tokens' attention chooses the kept tokens
//   think  : prefill the prompt, the window's queries choose the kept key channels
//   hybrid : values-only EchoKV cache; after the prompt ThinK (on RoPE pairs) prunes its keys
//   echo_kvzip : KVzip scores (full-cache pass) choose per layer the context tokens an EchoKV
//            cache keeps; the heads x tokens savings multiply
// Every other kind is a plain chunked prefill into make_cache's cache.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "echo/cache_selection.h"

namespace echokv {

// Token range of the context inside the prompt: [context_begin, context_end); before it the
// prefix (chat header, BOS), after it the question. context_end < 0: no split known.
struct PromptSpan {
  int64_t context_begin = 0;
  int64_t context_end = -1;
};

struct PreparedPrompt {
  std::unique_ptr<KVCache> cache;  // holds every prompt token
  torch::Tensor logits;            // float32 [V] of the last prompt position
  double prefill_seconds = 0;      // forward passes over the prompt
  double scoring_seconds = 0;      // the method's extra scoring pass (KVzip), 0 for others
  double context_kept = -1;        // KVzip: fraction of context pairs kept (the official ratio); -1 n/a
  bool scores_reused = false;      // KVzip: the pair scores came from the run's memo
};

PreparedPrompt prefill_prompt(LlamaModel& model, const CacheSelection& selection, const std::vector<int64_t>& ids,
                              const PromptSpan& span, int64_t capacity, int64_t chunk);

// KVzip head level: max-merged head scores over calibration contexts (each given as token
// ids, prefixed by `prefix` ids such as BOS). Returns per layer [Hkv].
std::vector<torch::Tensor> kvzip_calibrate_heads(LlamaModel& model, const KvzipPrompts& prompts,
                                                 const std::vector<int64_t>& prefix,
                                                 const std::vector<std::vector<int64_t>>& contexts, int64_t chunk);

}  // namespace echokv
