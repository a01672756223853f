// How well a set of KV features is predicted by a linear map (with intercept) from another
// set, computed from covariances alone (no tokens): ridge least squares
//   W = S_ba (S_aa + lambda I)^-1,  residual variance per output = diag(S_bb - 2 W S_ab + W S_aa W^T)
// with lambda = ridge * mean(diag S_aa) (ridge = 0: ordinary least squares; the small default
// only guards against singular inputs). R^2 of a set of outputs is variance-weighted:
// 1 - sum(residual) / sum(variance), i.e. the fraction of the outputs' variance (the MSE a
// zero-knowledge predictor, their mean, would make) that the map recovers. In-sample on the
// calibration tokens.
#pragma once
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "analysis/kv_statistics.h"

namespace echokv {

// Features of one layer: (layer, feature indices in its flattened [Hkv*D] vector).
struct LayerFeatures {
  int layer = 0;
  std::vector<int64_t> indices;
};

struct Predictability {
  torch::Tensor output_variance;   // [n_out] float64
  torch::Tensor residual_variance; // [n_out] float64
  double total_variance = 0;
  double total_residual = 0;
  double r2() const { return total_variance > 0 ? 1.0 - total_residual / total_variance : 1.0; }
  // Per output R^2, [n_out].
  torch::Tensor r2_per_output() const;
};

// Covariance of stacked feature sets (rows = a, columns = b) from the statistics.
torch::Tensor stacked_covariance(const KVStatistics& stats, KVKind kind, const std::vector<LayerFeatures>& a,
                                 const std::vector<LayerFeatures>& b);

Predictability linear_predictability(const KVStatistics& stats, KVKind kind, const std::vector<LayerFeatures>& inputs,
                                     const std::vector<LayerFeatures>& outputs, double ridge);

// The same from an explicit joint covariance: S_aa [a,a], S_ab [a,b], diag S_bb [b].
Predictability predictability_from_covariance(const torch::Tensor& s_aa, const torch::Tensor& s_ab,
                                              const torch::Tensor& s_bb_diag, double ridge);

std::vector<int64_t> range_indices(int64_t begin, int64_t end);
std::vector<int64_t> head_indices(const std::vector<int>& heads, int64_t head_dim);

}  // namespace echokv
