#include "analysis/head_metrics.h"

#include <cmath>
#include <limits>

#include "analysis/linear_predictability.h"

namespace echokv {

namespace {
const double kNaN = std::numeric_limits<double>::quiet_NaN();

KindHeadMetrics kind_metrics(const KVStatistics& stats, KVKind kind, int64_t H, int64_t D, double ridge) {
  const int64_t L = stats.num_layers();
  const int W = stats.window();
  KindHeadMetrics m;
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  m.head_variance = torch::zeros({L, H}, f64);
  m.intra_r2 = torch::full({L, H}, kNaN, f64);
  m.cka = torch::zeros({L, H, H}, f64);
  m.cosine = torch::zeros({L, H, H}, f64);
  m.inter_r2 = torch::full({L, L}, kNaN, f64);
  m.inter_head_r2 = torch::full({L, std::max(W, 1), H}, kNaN, f64);
  for (int l = 0; l < L; ++l) {
    auto cov = stats.covariance(kind, l, l);  // [F, F]
    for (int64_t i = 0; i < H; ++i) {
      auto cii = cov.slice(0, i * D, (i + 1) * D).slice(1, i * D, (i + 1) * D);
      m.head_variance[l][i] = cii.trace();
      for (int64_t j = 0; j < H; ++j) {
        auto cij = cov.slice(0, i * D, (i + 1) * D).slice(1, j * D, (j + 1) * D);
        auto cjj = cov.slice(0, j * D, (j + 1) * D).slice(1, j * D, (j + 1) * D);
        const double nii = cii.norm().item<double>(), njj = cjj.norm().item<double>();
        const double tii = cii.trace().item<double>(), tjj = cjj.trace().item<double>();
        m.cka[l][i][j] = (nii > 0 && njj > 0) ? cij.pow(2).sum().item<double>() / (nii * njj) : 0.0;
        m.cosine[l][i][j] = (tii > 0 && tjj > 0) ? cij.trace().item<double>() / std::sqrt(tii * tjj) : 0.0;
      }
      if (H > 1) {
        std::vector<int> others;
        for (int64_t j = 0; j < H; ++j)
          if (j != i) others.push_back(int(j));
        auto p = linear_predictability(stats, kind, {{l, head_indices(others, D)}},
                                       {{l, head_indices({int(i)}, D)}}, ridge);
        m.intra_r2[l][i] = p.r2();
      }
    }
    const auto all = range_indices(0, H * D);
    for (int lag = 1; lag <= W && l - lag >= 0; ++lag) {
      auto p = linear_predictability(stats, kind, {{l - lag, all}}, {{l, all}}, ridge);
      m.inter_r2[l][l - lag] = p.r2();
      // Per head from the same fit: outputs are independent regressions.
      auto per = p.residual_variance.view({H, D}).sum(1) / p.output_variance.view({H, D}).sum(1).clamp_min(1e-300);
      m.inter_head_r2[l][lag - 1] = 1.0 - per;
    }
  }
  return m;
}

nlohmann::json kind_json(const KindHeadMetrics& m) {
  return {{"head_variance", tensor_to_json(m.head_variance)},
          {"intra_r2", tensor_to_json(m.intra_r2)},
          {"cka", tensor_to_json(m.cka)},
          {"cosine", tensor_to_json(m.cosine)},
          {"inter_r2", tensor_to_json(m.inter_r2)},
          {"inter_head_r2", tensor_to_json(m.inter_head_r2)}};
}
}  // namespace

nlohmann::json tensor_to_json(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous();
  if (c.dim() == 0) {
    const double x = c.item<double>();
    return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
  }
  nlohmann::json out = nlohmann::json::array();
  for (int64_t i = 0; i < c.size(0); ++i) out.push_back(tensor_to_json(c[i]));
  return out;
}

HeadMetrics compute_head_metrics(const KVStatistics& stats, int64_t head_dim, double ridge) {
  HeadMetrics m;
  m.tokens = stats.count();
  m.window = stats.window();
  m.head_dim = head_dim;
  m.num_kv_heads = stats.features() / head_dim;
  m.ridge = ridge;
  m.k = kind_metrics(stats, KVKind::Key, m.num_kv_heads, head_dim, ridge);
  m.v = kind_metrics(stats, KVKind::Value, m.num_kv_heads, head_dim, ridge);
  return m;
}

nlohmann::json HeadMetrics::to_json() const {
  return {{"tokens", tokens}, {"window", window}, {"num_kv_heads", num_kv_heads}, {"head_dim", head_dim},
          {"ridge", ridge}, {"k", kind_json(k)}, {"v", kind_json(v)}};
}

}  // namespace echokv
