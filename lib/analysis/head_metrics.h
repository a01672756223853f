// Head-similarity metrics of a model's KV cache, from accumulated statistics, for K and V
// separately:
//   - intra-layer: each head's R^2 from the other heads of its layer (linear map, intercept);
//   - pairwise head similarity in a layer: linear CKA, ||C_ij||_F^2 / (||C_ii||_F ||C_jj||_F),
//     and the cosine of the centred data, tr(C_ij) / sqrt(tr(C_ii) tr(C_jj)) (feature d of
//     head i against feature d of head j over all tokens), where C are covariances;
//   - inter-layer: R^2 of layer l (all heads) from layer m (all heads) for m in [l-window, l),
//     and per head of l from all heads of l-lag.
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "analysis/kv_statistics.h"

namespace echokv {

struct KindHeadMetrics {
  torch::Tensor head_variance;  // [L, H] total variance of each head's features
  torch::Tensor intra_r2;       // [L, H] head from the other heads of its layer
  torch::Tensor cka;            // [L, H, H]
  torch::Tensor cosine;         // [L, H, H]
  torch::Tensor inter_r2;       // [L, L] row l from column m (m in [l-window, l)); NaN elsewhere
  torch::Tensor inter_head_r2;  // [L, window, H] head h of l from all heads of l-1-j; NaN when l-1-j < 0
};

struct HeadMetrics {
  int64_t tokens = 0;
  int window = 0;
  int64_t num_kv_heads = 0, head_dim = 0;
  double ridge = 0;
  KindHeadMetrics k, v;
  const KindHeadMetrics& at(KVKind kind) const { return kind == KVKind::Key ? k : v; }
  nlohmann::json to_json() const;
};

HeadMetrics compute_head_metrics(const KVStatistics& stats, int64_t head_dim, double ridge);

// Tensor -> nested JSON arrays (NaN -> null).
nlohmann::json tensor_to_json(const torch::Tensor& t);

}  // namespace echokv
