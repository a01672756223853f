// The prefill skeleton the eviction methods share: score a prefilled full cache, keep per
// (layer, KV head) what a rule selects in a compacted cache, then prefill what follows.
#pragma once
#include <functional>
#include <vector>

#include "compress/observation_window.h"
#include "methods/method.h"

namespace echokv {

// The whole prompt prefilled with its last `window` queries recorded; `keep` (per layer bool
// [Hkv, n] over the prompt) chooses what the compacted cache holds. Times prefill and scoring.
using WindowKeepRule = std::function<std::vector<torch::Tensor>(const FullCache&, const WindowQueries&)>;
PreparedPrompt prefill_window_compacted(LlamaModel& model, const std::vector<int64_t>& ids, int64_t window,
                                        int64_t capacity, int64_t chunk, const WindowKeepRule& keep);

// ids[end, n) (the question) prefilled into out.cache after the context was compressed; out's
// logits become the last position's and prefill_seconds grows by the time taken.
void prefill_after_context(LlamaModel& model, PreparedPrompt& out, const std::vector<int64_t>& ids, int64_t end,
                           int64_t chunk);

}  // namespace echokv
