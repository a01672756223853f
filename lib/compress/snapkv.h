// SnapKV (Li et al. 2024, official snapkv_utils semantics): the last `window` prompt tokens
// vote with their attention (softmax over the whole prompt, causal inside the window, float32)
// for the earlier tokens; votes are summed over the window, smoothed by a 1-D average pool
// (kernel `kernel`, padding kernel/2, stride 1), averaged over the query heads of each KV
// head's GQA group, and every (layer, KV head) keeps its top (capacity - window) earlier
// tokens plus the window. capacity = round(ratio * prompt tokens). Tokens after the prompt
// (generated) are always kept.
#pragma once
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "cache/full_cache.h"

namespace echokv {

struct SnapKVOptions {
  double ratio = 0.5;    // prompt pairs kept (window included)
  int64_t window = 32;   // observation window
  int64_t kernel = 7;    // pooling kernel (odd)
};

// cache: the prompt prefilled (n tokens); window_q: per layer [B, Hq, w, D] post-RoPE queries
// of the last w prompt tokens. Returns per layer bool [Hkv, n].
std::vector<torch::Tensor> snapkv_keep(const FullCache& cache, const std::vector<torch::Tensor>& window_q,
                                       double scale, const SnapKVOptions& options);
// The same with a capacity per layer (PyramidKV): layer l keeps capacity[l] prompt pairs per
// head, window included.
std::vector<torch::Tensor> snapkv_keep_per_layer(const FullCache& cache, const std::vector<torch::Tensor>& window_q,
                                                 double scale, int64_t kernel, const std::vector<int64_t>& capacity);

}  // namespace echokv
