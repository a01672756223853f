#include "report/stats.h"

#include <algorithm>
#include <cmath>
#include <tuple>
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

namespace {

// A fixed stream: the interval is a pure function of the scores.
uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double mean_of(const std::vector<double>& x) {
  double sum = 0;
  for (double v : x) sum += v;
  return sum / static_cast<double>(x.size());
}

// The 2.5 % and 97.5 % points of the sorted resampled statistics (linear interpolation
// between order statistics, as numpy's default percentile).
std::pair<double, double> percentile_95(std::vector<double> stats) {
  std::sort(stats.begin(), stats.end());
  auto at = [&stats](double q) {
    const double pos = q * static_cast<double>(stats.size() - 1);
    const auto k = static_cast<size_t>(std::floor(pos));
    const double frac = pos - static_cast<double>(k);
    return k + 1 < stats.size() ? stats[k] + frac * (stats[k + 1] - stats[k]) : stats[k];
  };
  return {at(0.025), at(0.975)};
}

}  // namespace

MeanCI mean_ci(const std::vector<double>& x) {
  MeanCI r;
  r.n = static_cast<int64_t>(x.size());
  if (x.empty()) {
    r.mean = NAN;
    return r;
  }
  r.mean = mean_of(x);
  if (x.size() < 2) return r;
  double ss = 0;
  for (double v : x) ss += (v - r.mean) * (v - r.mean);
  const double sd = std::sqrt(ss / static_cast<double>(x.size() - 1));
  const double hw = t_quantile_975(r.n - 1) * sd / std::sqrt(static_cast<double>(x.size()));
  r.lo = r.mean - hw;
  r.hi = r.mean + hw;
  return r;
}

MeanCI bootstrap_mean_ci(const std::vector<double>& x, int64_t resamples) {
  if (x.empty()) {  // no samples: no mean, no interval
    MeanCI r;
    r.mean = NAN;
    return r;
  }
  return stratified_bootstrap_mean({x}, resamples);
}

MeanCI stratified_bootstrap_mean(const std::vector<std::vector<double>>& groups, int64_t resamples) {
  if (resamples < 100) throw Error("bootstrap: at least 100 resamples, got " + std::to_string(resamples));
  MeanCI r;
  if (groups.empty()) {
    r.mean = NAN;
    return r;
  }
  bool every_group_varies = true;
  double sum = 0;
  for (const auto& g : groups) {
    if (g.empty()) throw Error("stratified bootstrap: a group has no samples");
    r.n += static_cast<int64_t>(g.size());
    sum += mean_of(g);
    every_group_varies = every_group_varies && g.size() >= 2;
  }
  r.mean = sum / static_cast<double>(groups.size());
  if (!every_group_varies) return r;
  uint64_t state = 0x5EEDB007ULL;
  std::vector<double> means(static_cast<size_t>(resamples));
  for (auto& m : means) {
    double total = 0;
    for (const auto& g : groups) {
      double s = 0;
      for (size_t i = 0; i < g.size(); ++i) s += g[splitmix(state) % g.size()];
      total += s / static_cast<double>(g.size());
    }
    m = total / static_cast<double>(groups.size());
  }
  std::tie(r.lo, r.hi) = percentile_95(std::move(means));
  return r;
}

MeanCI paired_bootstrap(const std::vector<double>& a, const std::vector<double>& b, int64_t resamples) {
  if (a.size() != b.size())
    throw Error("paired difference: " + std::to_string(a.size()) + " against " + std::to_string(b.size()) + " samples");
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return bootstrap_mean_ci(d, resamples);
}

bool MeanCI::has_interval() const { return std::isfinite(lo) && std::isfinite(hi); }

bool MeanCI::excludes_zero() const { return has_interval() && (lo > 0 || hi < 0); }

nlohmann::json MeanCI::to_json() const {
  nlohmann::json j = {{"n", n}, {"mean", std::isfinite(mean) ? nlohmann::json(mean) : nlohmann::json()}};
  j["ci95"] = has_interval() ? nlohmann::json::array({lo, hi}) : nlohmann::json();
  j["method"] = "bootstrap";
  return j;
}

MeanCI MeanCI::from_json(const nlohmann::json& j) {
  MeanCI r;
  r.n = j.value("n", int64_t{0});
  r.mean = j.contains("mean") && j["mean"].is_number() ? j["mean"].get<double>() : NAN;
  if (j.contains("ci95") && j["ci95"].is_array() && j["ci95"].size() == 2) {
    r.lo = j["ci95"][0].get<double>();
    r.hi = j["ci95"][1].get<double>();
  }
  return r;
}

std::string MeanCI::text(int digits) const {
  char buf[96];
  if (n == 0) return "- (n=0)";
  if (!has_interval()) {
    std::snprintf(buf, sizeof(buf), "%.*f (n=%lld, no CI)", digits, mean, (long long)n);
  } else {
    std::snprintf(buf, sizeof(buf), "%.*f [%.*f, %.*f] (n=%lld)", digits, mean, digits, lo, digits, hi, (long long)n);
  }
  return buf;
}

}  // namespace echokv::stats
