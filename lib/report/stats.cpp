#include "report/stats.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace echokv::stats {

double t_quantile_975(int64_t df) {
  if (df < 1) throw Error("t quantile: degrees of freedom must be >= 1");
  // Exact values for small df (tables), then the Cornish-Fisher expansion around z.
  static const double table[] = {12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
                                 2.2010,  2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
                                 2.0796,  2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423};
  if (df <= 30) return table[df - 1];
  const double z = 1.959963984540054, v = static_cast<double>(df);
  const double z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z;
  return z + (z3 + z) / (4 * v) + (5 * z5 + 16 * z3 + 3 * z) / (96 * v * v) +
         (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * v * v * v);
}

MeanCI mean_ci(const std::vector<double>& x) {
  MeanCI r;
  r.n = static_cast<int64_t>(x.size());
  if (x.empty()) {
    r.mean = NAN;
    r.half_width = NAN;
    return r;
  }
  double sum = 0;
  for (double v : x) sum += v;
  r.mean = sum / static_cast<double>(x.size());
  if (x.size() < 2) {
    r.half_width = NAN;
    return r;
  }
  double ss = 0;
  for (double v : x) ss += (v - r.mean) * (v - r.mean);
  const double sd = std::sqrt(ss / static_cast<double>(x.size() - 1));
  r.half_width = t_quantile_975(r.n - 1) * sd / std::sqrt(static_cast<double>(x.size()));
  return r;
}

MeanCI paired_difference(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size())
    throw Error("paired difference: " + std::to_string(a.size()) + " against " + std::to_string(b.size()) + " samples");
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return mean_ci(d);
}

bool MeanCI::excludes_zero() const { return n >= 2 && std::isfinite(half_width) && (low() > 0 || high() < 0); }

nlohmann::json MeanCI::to_json() const {
  nlohmann::json j = {{"n", n}, {"mean", std::isfinite(mean) ? nlohmann::json(mean) : nlohmann::json()}};
  j["ci95"] = std::isfinite(half_width) ? nlohmann::json::array({low(), high()}) : nlohmann::json();
  return j;
}

std::string MeanCI::text(int digits) const {
  char buf[96];
  if (n == 0) return "- (n=0)";
  if (!std::isfinite(half_width)) {
    std::snprintf(buf, sizeof(buf), "%.*f (n=%lld, no CI)", digits, mean, (long long)n);
  } else {
    std::snprintf(buf, sizeof(buf), "%.*f ± %.*f (n=%lld)", digits, mean, digits, half_width, (long long)n);
  }
  return buf;
}

}  // namespace echokv::stats
