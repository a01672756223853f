// A prompt prefilled into some method's cache, and the prompt's context / question split.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "cache/kv_cache.h"

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
  double scoring_seconds = 0;      // the method's extra scoring pass (KVzip, SnapKV, ThinK), 0 for others
  double context_kept = -1;        // KVzip: fraction of context pairs kept (the official ratio); -1 n/a
  bool scores_reused = false;      // KVzip: the pair scores came from the run's memo
  std::string size_note;           // why the stored ratio cannot meet the request here (empty: it can)
};

}  // namespace echokv
