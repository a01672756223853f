// Uncertainty of benchmark scores: the mean of per-sample scores with a 95 % Student-t
// confidence interval, and the paired difference of two methods on the same samples (a
// ranking is claimed only when the difference's interval excludes 0).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace echokv::stats {

struct MeanCI {
  int64_t n = 0;
  double mean = 0;
  double half_width = 0;  // 95 % CI = mean +- half_width; NaN when n < 2
  double low() const { return mean - half_width; }
  double high() const { return mean + half_width; }
  bool excludes_zero() const;  // false when n < 2
  nlohmann::json to_json() const;  // {"n", "mean", "ci95": [low, high] or null}
  std::string text(int digits = 1) const;  // "81.2 ± 3.4 (n=50)", "81.2 (n=1, no CI)"
};

// Two-sided 97.5 % quantile of Student's t with `df` degrees of freedom (df >= 1).
double t_quantile_975(int64_t df);

MeanCI mean_ci(const std::vector<double>& values);
// a[i] - b[i] over the same samples; throws when the lengths differ.
MeanCI paired_difference(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace echokv::stats
