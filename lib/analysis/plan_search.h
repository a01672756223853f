// Scores a HeadPlan against KV statistics (predicted R^2) and searches for the plan that
// maximises it under a byte budget ("similarity" strategy).
//
// Score of one (layer, kind): the fraction of the layer's KV variance that survives, kept
// features counting as exact and dropped features as their R^2 from the reconstructor's
// inputs: (var_kept + R^2_dropped * var_dropped) / var_total (1 for global layers). A plan's
// score is the mean over all layers and both kinds.
//
// Similarity strategy (documented in docs/analysis.md):
//   1. For each kind and each number of groups g, the group boundaries (contiguous groups
//      whose first layer is global and feeds the others, at most window+1 layers long) that
//      maximise the score with no local features: exact dynamic programming over the
//      inter-layer R^2 matrix.
//   2. With the bytes left, greedily add whole local heads, over all compressed layers of K
//      and V jointly, always the head with the largest score gain, until no head fits.
//   3. Keep the best g. The stored bytes never exceed the target; the slack is below one
//      head's share.
#pragma once
#include <vector>

#include "analysis/kv_statistics.h"
#include "echo/head_plan.h"

namespace echokv {

struct PlanPrediction {
  std::vector<double> k_layer, v_layer;        // score per layer (1 for global)
  std::vector<double> k_dropped_r2, v_dropped_r2;  // R^2 of the dropped part (NaN for global)
  double score = 0;                            // mean over layers and kinds
  double k_score = 0, v_score = 0;
  const std::vector<double>& layer(KVKind kind) const { return kind == KVKind::Key ? k_layer : v_layer; }
};

PlanPrediction predict_plan(const KVStatistics& stats, const HeadPlan& plan, double ridge);

struct SimilaritySearchOptions {
  double target_ratio = 0.5;
  double ridge = 1e-6;
  bool verbose = false;  // progress lines on stderr
};

HeadPlan similarity_plan(const KVStatistics& stats, const PlanShape& shape, const SimilaritySearchOptions& options);

}  // namespace echokv
