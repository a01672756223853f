#include "analysis/linear_predictability.h"

#include <numeric>

namespace echokv {

torch::Tensor Predictability::r2_per_output() const {
  return 1.0 - residual_variance / output_variance.clamp_min(1e-300);
}

std::vector<int64_t> range_indices(int64_t begin, int64_t end) {
  std::vector<int64_t> out(std::max<int64_t>(0, end - begin));
  std::iota(out.begin(), out.end(), begin);
  return out;
}

std::vector<int64_t> head_indices(const std::vector<int>& heads, int64_t head_dim) {
  std::vector<int64_t> out;
  for (int h : heads)
    for (int64_t d = 0; d < head_dim; ++d) out.push_back(h * head_dim + d);
  return out;
}

torch::Tensor stacked_covariance(const KVStatistics& stats, KVKind kind, const std::vector<LayerFeatures>& a,
                                 const std::vector<LayerFeatures>& b) {
  std::vector<torch::Tensor> rows;
  for (const auto& fa : a) {
    if (fa.indices.empty()) continue;
    std::vector<torch::Tensor> cols;
    auto ia = torch::tensor(fa.indices, torch::kInt64);
    for (const auto& fb : b) {
      if (fb.indices.empty()) continue;
      auto ib = torch::tensor(fb.indices, torch::kInt64);
      cols.push_back(stats.covariance(kind, fa.layer, fb.layer).index_select(0, ia).index_select(1, ib));
    }
    if (!cols.empty()) rows.push_back(torch::cat(cols, 1));
  }
  if (rows.empty()) return torch::zeros({0, 0}, torch::kFloat64);
  return torch::cat(rows, 0);
}

Predictability predictability_from_covariance(const torch::Tensor& s_aa, const torch::Tensor& s_ab,
                                              const torch::Tensor& s_bb_diag, double ridge) {
  Predictability p;
  p.output_variance = s_bb_diag.clamp_min(0.0);
  p.total_variance = p.output_variance.sum().item<double>();
  if (s_aa.numel() == 0) {
    p.residual_variance = p.output_variance.clone();
    p.total_residual = p.total_variance;
    return p;
  }
  const int64_t n = s_aa.size(0);
  const double scale = s_aa.diagonal().mean().item<double>();
  // Tiny absolute floor so a constant input (zero variance) cannot make the system singular.
  const double lambda = ridge * scale + 1e-12 * std::max(scale, 1e-30);
  auto a = s_aa + lambda * torch::eye(n, s_aa.options());
  auto wt = torch::linalg_solve(a, s_ab);  // [a, b] = W^T
  // diag(W S_ab) = sum_i wt[i,j] * S_ab[i,j]; diag(W S_aa W^T) = sum_i wt[i,j] * (S_aa wt)[i,j]
  auto fit = (wt * s_ab).sum(0);
  auto quad = (wt * s_aa.mm(wt)).sum(0);
  p.residual_variance = (p.output_variance - 2.0 * fit + quad).clamp_min(0.0);
  p.total_residual = p.residual_variance.sum().item<double>();
  return p;
}

Predictability linear_predictability(const KVStatistics& stats, KVKind kind, const std::vector<LayerFeatures>& inputs,
                                     const std::vector<LayerFeatures>& outputs, double ridge) {
  auto s_aa = stacked_covariance(stats, kind, inputs, inputs);
  auto s_ab = stacked_covariance(stats, kind, inputs, outputs);
  auto s_bb = stacked_covariance(stats, kind, outputs, outputs);
  auto diag = s_bb.numel() ? s_bb.diagonal().clone() : torch::zeros({0}, torch::kFloat64);
  return predictability_from_covariance(s_aa, s_ab, diag, ridge);
}

}  // namespace echokv
