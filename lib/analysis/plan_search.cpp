#include "analysis/plan_search.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <map>
#include <set>

#include "analysis/linear_predictability.h"
#include "core/error.h"

namespace echokv {

namespace {
const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<int64_t> ranges_to_indices(const std::vector<FeatureRange>& ranges) {
  std::vector<int64_t> out;
  for (const auto& r : ranges)
    for (int64_t i = r.begin; i < r.end; ++i) out.push_back(i);
  return out;
}

struct LayerScore {
  double score = 1.0;
  double dropped_r2 = kNaN;
};

LayerScore score_layer(const KVStatistics& stats, KVKind kind, int layer, const LayerKindPlan& p, int64_t F,
                       double ridge) {
  if (p.global) return {};
  for (int s : p.sources)
    if (!stats.covers(layer, s))
      throw Error("plan scoring: layer " + std::to_string(layer) + " uses source layer " + std::to_string(s) +
                  ", further back than the statistics' window (" + std::to_string(stats.window()) +
                  "); collect with a larger analysis.window");
  std::vector<LayerFeatures> inputs;
  for (int s : p.sources) inputs.push_back({s, range_indices(0, F)});
  const auto kept = ranges_to_indices(p.kept);
  if (!kept.empty()) inputs.push_back({layer, kept});
  const auto dropped = ranges_to_indices(p.dropped(F));
  auto pred = linear_predictability(stats, kind, inputs, {{layer, dropped}}, ridge);
  const double total = stats.covariance(kind, layer, layer).diagonal().sum().item<double>();
  LayerScore out;
  out.dropped_r2 = pred.r2();
  out.score = total > 0 ? 1.0 - pred.total_residual / total : 1.0;
  return out;
}

// Best contiguous grouping with g groups for one kind, no local features: returns the global layers.
// gain[l][s] = score of layer l rebuilt from layer s (s in [l-window, l)).
std::vector<int> best_groups(const std::vector<std::vector<double>>& gain, int L, int window, int g, double* best) {
  const double NEG = -1e300;
  // f[c][j]: best total over layers 0..j when j is global and c globals are used in 0..j.
  std::vector<std::vector<double>> f(g + 1, std::vector<double>(L, NEG));
  std::vector<std::vector<int>> from(g + 1, std::vector<int>(L, -1));
  auto run = [&](int j, int end) {  // layers j+1..end-1 rebuilt from j
    double s = 0;
    for (int l = j + 1; l < end; ++l) s += gain[l][j];
    return s;
  };
  f[1][0] = 1.0;
  for (int c = 1; c < g; ++c)
    for (int j = 0; j < L; ++j) {
      if (f[c][j] <= NEG) continue;
      for (int k = j + 1; k < L && k - j <= window + 1; ++k) {
        const double v = f[c][j] + run(j, k) + 1.0;
        if (v > f[c + 1][k]) f[c + 1][k] = v, from[c + 1][k] = j;
      }
    }
  double best_v = NEG;
  int best_j = -1;
  for (int j = 0; j < L; ++j) {
    if (f[g][j] <= NEG || L - 1 - j > window) continue;
    const double v = f[g][j] + run(j, L);
    if (v > best_v) best_v = v, best_j = j;
  }
  *best = best_v;
  std::vector<int> globals;
  if (best_j < 0) return globals;
  for (int c = g, j = best_j; c >= 1; j = from[c][j], --c) globals.push_back(j);
  std::reverse(globals.begin(), globals.end());
  return globals;
}

HeadPlan plan_from_globals(const PlanShape& shape, const std::vector<int>& k_globals, const std::vector<int>& v_globals) {
  HeadPlan plan = HeadPlan::full(shape);
  for (KVKind kind : {KVKind::Key, KVKind::Value}) {
    const auto& globals = kind == KVKind::Key ? k_globals : v_globals;
    std::set<int> g(globals.begin(), globals.end());
    int current = -1;
    for (int l = 0; l < shape.num_layers; ++l) {
      if (g.count(l)) {
        current = l;
        continue;
      }
      auto& p = plan.at(l, kind);
      p.global = false;
      p.sources = {current};
    }
  }
  return plan;
}

void set_kept_heads(LayerKindPlan& p, const std::set<int>& heads, int64_t D) {
  p.kept.clear();
  for (int h : heads) {
    if (!p.kept.empty() && p.kept.back().end == h * D) p.kept.back().end += D;
    else p.kept.push_back({h * D, (h + 1) * D});
  }
}
}  // namespace

PlanPrediction predict_plan(const KVStatistics& stats, const HeadPlan& plan, double ridge) {
  const int64_t F = plan.shape.features();
  if (stats.features() != F || stats.num_layers() != plan.shape.num_layers)
    throw Error("plan scoring: the plan's shape does not match the statistics (layers " +
                std::to_string(plan.shape.num_layers) + " vs " + std::to_string(stats.num_layers()) + ", features " +
                std::to_string(F) + " vs " + std::to_string(stats.features()) + ")");
  PlanPrediction out;
  double total = 0;
  for (KVKind kind : {KVKind::Key, KVKind::Value}) {
    auto& layer = kind == KVKind::Key ? out.k_layer : out.v_layer;
    auto& dropped = kind == KVKind::Key ? out.k_dropped_r2 : out.v_dropped_r2;
    double kind_total = 0;
    for (int l = 0; l < plan.shape.num_layers; ++l) {
      auto s = score_layer(stats, kind, l, plan.at(l, kind), F, ridge);
      layer.push_back(s.score);
      dropped.push_back(s.dropped_r2);
      kind_total += s.score;
    }
    (kind == KVKind::Key ? out.k_score : out.v_score) = kind_total / double(plan.shape.num_layers);
    total += kind_total;
  }
  out.score = total / double(2 * plan.shape.num_layers);
  return out;
}

HeadPlan similarity_plan(const KVStatistics& stats, const PlanShape& shape, const SimilaritySearchOptions& options) {
  const int L = int(shape.num_layers);
  const int64_t F = shape.features(), D = shape.head_dim, H = shape.num_kv_heads;
  if (stats.features() != F || stats.num_layers() != L)
    throw Error("similarity plan: the model shape does not match the statistics");
  if (options.target_ratio >= 1.0) {
    HeadPlan plan = HeadPlan::full(shape);
    plan.strategy = "similarity";
    return plan;
  }
  const int W = std::max(1, stats.window());
  const int64_t budget = int64_t(std::floor(options.target_ratio * double(2 * L * F) + 1e-6));  // features

  // Inter-layer gains with no local features.
  std::map<KVKind, std::vector<std::vector<double>>> gain;
  for (KVKind kind : {KVKind::Key, KVKind::Value}) {
    auto& g = gain[kind];
    g.assign(L, std::vector<double>(L, 0.0));
    for (int l = 0; l < L; ++l)
      for (int s = std::max(0, l - W); s < l; ++s) {
        LayerKindPlan p;
        p.global = false;
        p.sources = {s};
        g[l][s] = score_layer(stats, kind, l, p, F, options.ridge).score;
      }
  }

  HeadPlan best;
  double best_score = -1;
  // Group counts per kind: equal, or one apart (values are usually cheaper to rebuild).
  const int min_groups = (L + W) / (W + 1);  // ceil(L / (W + 1))
  std::vector<std::pair<int, int>> counts;
  for (int g = min_groups; g <= L; ++g)
    for (int dk : {0, 1})
      for (int dv : {0, 1})
        if (dk + dv < 2 && g + dk <= L && g + dv <= L) counts.push_back({g + dk, g + dv});
  for (const auto& [k_groups, v_groups] : counts) {
    const int64_t global_cost = int64_t(k_groups + v_groups) * F;
    if (global_cost > budget) continue;
    double k_best = 0, v_best = 0;
    auto k_globals = best_groups(gain[KVKind::Key], L, W, k_groups, &k_best);
    auto v_globals = best_groups(gain[KVKind::Value], L, W, v_groups, &v_best);
    if (k_globals.empty() || v_globals.empty()) continue;
    HeadPlan plan = plan_from_globals(shape, k_globals, v_globals);

    // Greedy whole-head additions over all compressed (layer, kind).
    int64_t left = budget - global_cost;
    std::map<std::pair<int, int>, std::set<int>> kept;        // (kind, layer) -> heads
    std::map<std::pair<int, int>, double> current;            // layer score now
    std::map<std::tuple<int, int, int>, double> gain_of;      // (kind, layer, head) -> score gain
    auto refresh = [&](KVKind kind, int l) {
      const std::pair<int, int> key{int(kind), l};
      auto& p = plan.at(l, kind);
      current[key] = score_layer(stats, kind, l, p, F, options.ridge).score;
      for (int h = 0; h < H; ++h) {
        if (kept[key].count(h)) continue;
        auto heads = kept[key];
        heads.insert(h);
        if (int64_t(heads.size()) == H) {  // keeping every head = the layer becomes global
          gain_of[{int(kind), l, h}] = 1.0 - current[key];
          continue;
        }
        LayerKindPlan trial = p;
        set_kept_heads(trial, heads, D);
        gain_of[{int(kind), l, h}] = score_layer(stats, kind, l, trial, F, options.ridge).score - current[key];
      }
    };
    for (KVKind kind : {KVKind::Key, KVKind::Value})
      for (int l = 0; l < L; ++l)
        if (!plan.at(l, kind).global) refresh(kind, l);
    while (left >= D && !gain_of.empty()) {
      auto it = std::max_element(gain_of.begin(), gain_of.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
      const auto [kind_i, l, h] = it->first;
      const KVKind kind = KVKind(kind_i);
      const std::pair<int, int> key{kind_i, l};
      kept[key].insert(h);
      left -= D;
      for (int hh = 0; hh < H; ++hh) gain_of.erase({kind_i, l, hh});
      auto& p = plan.at(l, kind);
      if (int64_t(kept[key].size()) == H) {
        // Layer fully kept: global, not a source for anyone (sources were chosen by the groups).
        p = LayerKindPlan{};
        continue;
      }
      set_kept_heads(p, kept[key], D);
      refresh(kind, l);
    }
    plan.strategy = "similarity";
    plan.target_ratio = options.target_ratio;
    const double score = predict_plan(stats, plan, options.ridge).score;
    if (options.verbose)
      std::cerr << "[plan] similarity, ratio " << options.target_ratio << ": " << k_groups << " K / " << v_groups
                << " V groups -> ratio "
                << plan.ratio() << ", predicted R^2 " << score << std::endl;
    if (score > best_score) best_score = score, best = plan;
  }
  if (best_score < 0)
    throw Error("similarity plan: ratio " + std::to_string(options.target_ratio) +
                " cannot be met (each group needs one global layer, and groups are at most window+1 = " +
                std::to_string(W + 1) + " layers long: collect with a larger analysis.window)");
  auto globals_text = [&](const std::vector<LayerKindPlan>& side) {
    std::string text;
    for (int l = 0; l < L; ++l)
      if (side[l].global) text += (text.empty() ? "" : ",") + std::to_string(l);
    return text;
  };
  best.notes = "similarity search (groups by DP, heads by greedy); global layers K: " + globals_text(best.k) +
               "; V: " + globals_text(best.v);
  return best;
}

}  // namespace echokv
