// The observation window of SnapKV and ThinK: the queries of the prompt's last `window`
// tokens, captured while prefilling (the window is run as its own forward).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "cache/full_cache.h"
#include "cache/kv_cache.h"
#include "model/llama.h"

namespace echokv {

struct WindowQueries {
  std::vector<torch::Tensor> q;  // per layer [B, Hq, w, D], RoPE applied at the tokens' positions
  torch::Tensor logits;          // float32 [V] of the prompt's last position
  int64_t window = 0;            // w = min(window, prompt length)
};

// Prefills `ids` into `cache` (in chunks of `chunk` tokens) and returns the window's queries.
WindowQueries prefill_with_window_queries(LlamaModel& model, KVCache& cache, const std::vector<int64_t>& ids,
                                          int64_t window, int64_t chunk);

// The same into a new full cache of `capacity` tokens (SnapKV's and ThinK's first pass), timed.
struct FullWindowPrefill {
  std::unique_ptr<FullCache> cache;
  WindowQueries window;
  double seconds = 0;
};
FullWindowPrefill prefill_full_with_window_queries(LlamaModel& model, const std::vector<int64_t>& ids, int64_t window,
                                                   int64_t capacity, int64_t chunk);

}  // namespace echokv
