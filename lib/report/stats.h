// Uncertainty of benchmark scores: the mean of per-sample scores with a 95 % percentile
// bootstrap confidence interval, the paired difference of two methods on the same samples
// (a ranking is claimed only when the difference's interval excludes 0), and averages over
// tasks (RULER) whose interval resamples within each task (stratified bootstrap), so each
// task keeps its weight. Resampling is deterministic (a fixed stream per call): the same
// scores always give the same interval.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace echokv::stats {

constexpr int64_t kBootstrapResamples = 10000;

struct MeanCI {
  int64_t n = 0;      // samples (for a stratified mean: over all groups)
  double mean = 0;
  double lo = NAN, hi = NAN;  // 95 % interval; NaN when n < 2 (or a group has < 2)
  double low() const { return lo; }
  double high() const { return hi; }
  bool has_interval() const;
  bool excludes_zero() const;  // false without an interval
  nlohmann::json to_json() const;  // {"n", "mean", "ci95": [low, high] or null, "method": "bootstrap"}
  static MeanCI from_json(const nlohmann::json& j);
  // "81.2 [75.0, 87.5] (n=50)", "81.2 (n=1, no CI)"
  std::string text(int digits = 1) const;
};

// Two-sided 97.5 % quantile of Student's t with `df` degrees of freedom (df >= 1).
double t_quantile_975(int64_t df);

// Mean with a Student-t interval (kept for comparisons with the bootstrap).
MeanCI mean_ci(const std::vector<double>& values);

// Mean with the 95 % percentile bootstrap interval over `resamples` resamples of the values.
MeanCI bootstrap_mean_ci(const std::vector<double>& values, int64_t resamples = kBootstrapResamples);
// a[i] - b[i] over the same samples, bootstrapped; throws when the lengths differ.
MeanCI paired_bootstrap(const std::vector<double>& a, const std::vector<double>& b,
                        int64_t resamples = kBootstrapResamples);
// The mean of the groups' means (each group a task), its interval from resampling within
// every group. Empty groups are an error.
MeanCI stratified_bootstrap_mean(const std::vector<std::vector<double>>& groups,
                                 int64_t resamples = kBootstrapResamples);

}  // namespace echokv::stats
