// From token scores to keep-masks (the selections kvpress's wrappers add to any scorer).
// scores: float32 [Hkv, m] for the m tokens of a compressed range, higher = keep; every
// function returns bool [Hkv, m].
//   per head   each KV head keeps its own top `keep` tokens                     (ScorerPress)
//   adaptive   every head first keeps its top floor(alpha x keep) tokens, then one top-k over all
//              heads of the layer fills Hkv x keep: head budgets differ, the layer's total does not
//              (AdaKV, Feng et al. 2024; kvpress's AdaKVPress, alpha_safeguard 0.2)
//   chunks     the range cut into chunks of `chunk` tokens (the last one shorter); a chunk's score is
//              the mean over its tokens of the sum over heads; the top max(1, floor(fraction x
//              chunks)) chunks are kept in every head (ChunkKV, Liu et al. 2025; kvpress's ChunkKVPress)
// PyramidKV's layer budgets (Cai et al. 2024; kvpress's PyramidKVPress, from KVCache-Factory):
// tokens kept per layer, decreasing linearly with depth, averaging `kept_fraction x n`.
#pragma once
#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace echokv {

torch::Tensor keep_top_per_head(const torch::Tensor& scores, int64_t keep);
torch::Tensor keep_head_adaptive(const torch::Tensor& scores, int64_t keep, double alpha);
torch::Tensor keep_top_chunks(const torch::Tensor& scores, double kept_fraction, int64_t chunk);

// n: tokens scored per layer; window: the observation window (kept whole); beta >= 1: the
// pyramid's steepness. Falls back to round(kept_fraction x n) for every layer where the
// pyramid does not fit (n >= max >= min >= window), as kvpress does.
std::vector<int64_t> pyramid_layer_budgets(int layers, int64_t n, double kept_fraction, int64_t window, double beta);

}  // namespace echokv
