#include "analysis/analysis_report.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "analysis/head_metrics.h"
#include "analysis/plan_search.h"
#include "core/files.h"
#include "report/svg.h"

namespace echokv {

namespace {
std::string fmt(double v, int digits = 3) {
  if (!std::isfinite(v)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string ratio_tag(double r) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "r%.2f", r);
  return buf;
}

svg::Matrix to_matrix(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous();
  svg::Matrix m(c.size(0), std::vector<double>(c.size(1)));
  for (int64_t i = 0; i < c.size(0); ++i)
    for (int64_t j = 0; j < c.size(1); ++j) m[i][j] = c[i][j].item<double>();
  return m;
}

std::vector<std::string> numbered(const std::string& prefix, int64_t n) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

std::string describe_kind(const LayerKindPlan& p, int64_t head_dim) {
  if (p.global) return "global";
  std::string s = "from";
  for (int src : p.sources) s += " L" + std::to_string(src);
  if (p.kept.empty()) return s;
  s += " + keep";
  for (const auto& r : p.kept) {
    if (r.begin % head_dim == 0 && r.end % head_dim == 0) {
      for (int64_t h = r.begin / head_dim; h < r.end / head_dim; ++h) s += " h" + std::to_string(h);
    } else {
      s += " [" + std::to_string(r.begin) + "," + std::to_string(r.end) + ")";
    }
  }
  return s;
}

nlohmann::json prediction_json(const HeadPlan& plan, const PlanPrediction& p) {
  return {{"strategy", plan.strategy},
          {"target_ratio", plan.target_ratio},
          {"ratio", plan.ratio()},
          {"score", p.score},
          {"k_score", p.k_score},
          {"v_score", p.v_score},
          {"k_layer", p.k_layer},
          {"v_layer", p.v_layer},
          {"k_dropped_r2", tensor_to_json(torch::tensor(p.k_dropped_r2, torch::kFloat64))},
          {"v_dropped_r2", tensor_to_json(torch::tensor(p.v_dropped_r2, torch::kFloat64))},
          {"notes", plan.notes}};
}
}  // namespace

void write_analysis_outputs(const AnalyzeConfig& config, const ModelConfig& model, const KVStatistics& stats,
                            const AnalysisContext& context, const std::string& out_dir) {
  namespace fs = std::filesystem;
  fs::create_directories(join_path(out_dir, "figures"));
  fs::create_directories(join_path(out_dir, "plans"));
  const int64_t L = model.num_hidden_layers, H = model.num_key_value_heads, D = model.head_dim;
  const PlanShape shape = PlanShape::of(model);
  const int64_t granularity = config.paper_granularity > 0 ? config.paper_granularity : std::max<int64_t>(1, D / 2);

  std::cerr << "[analyze] metrics from " << stats.count() << " tokens" << std::endl;
  const HeadMetrics metrics = compute_head_metrics(stats, D, config.ridge);

  // Plans at every ratio.
  struct PlanRow {
    double ratio;
    HeadPlan paper, similarity;
    PlanPrediction paper_pred, similarity_pred;
    double similarity_at_paper_ratio = 0;  // same search with the paper's exact byte budget
  };
  std::vector<PlanRow> rows;
  for (double r : config.ratios) {
    PlanRow row{r, HeadPlan::paper_for_ratio(shape, r, granularity), {}, {}, {}, 0};
    SimilaritySearchOptions so;
    so.target_ratio = r;
    so.ridge = config.ridge;
    row.similarity = similarity_plan(stats, shape, so);
    row.paper_pred = predict_plan(stats, row.paper, config.ridge);
    row.similarity_pred = predict_plan(stats, row.similarity, config.ridge);
    row.similarity_at_paper_ratio = row.similarity_pred.score;
    if (std::abs(row.paper.ratio() - r) > 1e-12) {
      so.target_ratio = row.paper.ratio();
      row.similarity_at_paper_ratio = predict_plan(stats, similarity_plan(stats, shape, so), config.ridge).score;
    }
    row.paper.save(join_path(out_dir, "plans/paper-" + ratio_tag(r) + ".json"));
    row.similarity.save(join_path(out_dir, "plans/similarity-" + ratio_tag(r) + ".json"));
    std::cerr << "[analyze] ratio " << r << ": paper " << fmt(row.paper_pred.score) << " (ratio "
              << fmt(row.paper.ratio(), 4) << "), similarity " << fmt(row.similarity_pred.score) << " (ratio "
              << fmt(row.similarity.ratio(), 4) << ")" << std::endl;
    rows.push_back(std::move(row));
  }
  HeadPlan primary;
  {
    SimilaritySearchOptions so;
    so.target_ratio = config.primary_ratio;
    so.ridge = config.ridge;
    primary = similarity_plan(stats, shape, so);
    primary.save(join_path(out_dir, "plan.json"));
  }
  // The paper's layouts with no local features, S = 2 and 4 (as long as the window reaches).
  std::vector<std::pair<int, PlanPrediction>> paper_layouts;
  std::vector<HeadPlan> paper_layout_plans;
  for (int S : {2, 4}) {
    if (S - 1 > stats.window() || S > L) continue;
    auto plan = HeadPlan::paper(shape, S, 0);
    paper_layouts.push_back({S, predict_plan(stats, plan, config.ridge)});
    paper_layout_plans.push_back(plan);
  }

  // metrics.json
  nlohmann::json j = {{"model", context.model_path},
                      {"shape", {{"num_layers", L}, {"num_kv_heads", H}, {"head_dim", D}}},
                      {"calibration", context.calibration},
                      {"tokens", stats.count()},
                      {"skip_first", config.skip_first},
                      {"window", stats.window()},
                      {"ridge", config.ridge},
                      {"metrics", metrics.to_json()}};
  j["plans"] = nlohmann::json::array();
  for (const auto& row : rows) {
    j["plans"].push_back(prediction_json(row.paper, row.paper_pred));
    j["plans"].push_back(prediction_json(row.similarity, row.similarity_pred));
    j["plans"].back()["score_at_paper_ratio"] = row.similarity_at_paper_ratio;
  }
  j["paper_layouts"] = nlohmann::json::array();
  for (size_t i = 0; i < paper_layouts.size(); ++i) {
    auto pj = prediction_json(paper_layout_plans[i], paper_layouts[i].second);
    pj["S"] = paper_layouts[i].first;
    pj["D_local"] = 0;
    j["paper_layouts"].push_back(pj);
  }
  write_text_atomic(join_path(out_dir, "metrics.json"), j.dump(1) + "\n");

  // Figures.
  for (KVKind kind : {KVKind::Key, KVKind::Value}) {
    const auto& m = metrics.at(kind);
    const std::string K = kind == KVKind::Key ? "K" : "V";
    std::vector<svg::HeatmapPanel> panels;
    for (int64_t l = 0; l < L; ++l)
      panels.push_back({"layer " + std::to_string(l), to_matrix(m.cka[l]), numbered("h", H), numbered("h", H)});
    svg::HeatmapOptions o;
    o.title = K + ": linear CKA between the KV heads of each layer (pre-RoPE" + std::string(kind == KVKind::Key ? " keys" : " values") + ")";
    o.x_label = "KV head";
    o.y_label = "KV head";
    o.scale_label = "CKA";
    o.cell = H <= 8 ? 30 : 14;
    o.annotate = H <= 8;
    write_text_atomic(join_path(out_dir, "figures/intra_cka_" + std::string(kv_kind_name(kind)) + ".svg"),
                      svg::heatmaps(panels, o));
  }
  {
    svg::HeatmapOptions o;
    o.title = "Intra-layer R^2: each KV head predicted from the other heads of its layer";
    o.x_label = "KV head";
    o.y_label = "layer";
    o.scale_label = "R^2";
    o.cell = 30;
    o.columns = 2;
    write_text_atomic(join_path(out_dir, "figures/intra_r2.svg"),
                      svg::heatmaps({{"K", to_matrix(metrics.k.intra_r2), numbered("L", L), numbered("h", H)},
                                     {"V", to_matrix(metrics.v.intra_r2), numbered("L", L), numbered("h", H)}},
                                    o));
    o.title = "Inter-layer R^2: layer (row) predicted from an earlier layer (column), all heads";
    o.x_label = "source layer";
    o.y_label = "predicted layer";
    write_text_atomic(join_path(out_dir, "figures/inter_layer_r2.svg"),
                      svg::heatmaps({{"K", to_matrix(metrics.k.inter_r2), numbered("L", L), numbered("L", L)},
                                     {"V", to_matrix(metrics.v.inter_r2), numbered("L", L), numbered("L", L)}},
                                    o));
  }
  for (const auto& row : rows) {
    svg::BarOptions o;
    o.title = "Predicted R^2 per layer at ratio " + fmt(row.ratio, 2) + ": paper layout vs similarity plan";
    o.x_label = "layer (global layers score 1)";
    o.y_label = "fraction of the layer's KV variance kept or rebuilt";
    o.ymin = 0;
    o.ymax = 1;
    write_text_atomic(join_path(out_dir, "figures/plan_" + ratio_tag(row.ratio) + ".svg"),
                      svg::grouped_bars(numbered("L", L),
                                        {{"paper K", row.paper_pred.k_layer},
                                         {"similarity K", row.similarity_pred.k_layer},
                                         {"paper V", row.paper_pred.v_layer},
                                         {"similarity V", row.similarity_pred.v_layer}},
                                        o));
  }
  {
    svg::LineSeries paper{"paper layout", {}, {}}, sim{"similarity plan", {}, {}};
    for (const auto& row : rows) {
      paper.x.push_back(row.paper.ratio());
      paper.y.push_back(row.paper_pred.score);
      sim.x.push_back(row.similarity.ratio());
      sim.y.push_back(row.similarity_pred.score);
    }
    svg::BarOptions o;
    o.title = "Predicted R^2 (mean over layers, K and V) vs stored-byte ratio";
    o.x_label = "stored bytes / full bytes";
    o.y_label = "predicted R^2";
    o.ymin = 0;
    o.ymax = 1;
    write_text_atomic(join_path(out_dir, "figures/score_vs_ratio.svg"), svg::lines({paper, sim}, o, 0.0, 1.0));
  }

  // report.md
  std::ostringstream md;
  md << "# Head-similarity analysis: " << context.model_path << "\n\n";
  md << "- Model: " << L << " layers, " << model.num_attention_heads << " query heads, " << H << " KV heads x " << D
     << " (" << model.kv_dim() << " KV features per layer and kind)\n";
  md << "- Calibration: " << context.calibration << "; " << stats.count() << " tokens in the statistics (first "
     << config.skip_first << " positions of each sequence left out as attention sinks)\n";
  md << "- Statistics window: " << stats.window() << " layers back; ridge " << config.ridge
     << " (relative); collection took " << fmt(context.collect_seconds, 1) << " s\n";
  if (!context.command.empty()) md << "- Command: `" << context.command << "`\n";
  md << "\nAll R^2 values are in-sample linear fits (with intercept) on the calibration tokens, keys before RoPE. "
        "A layer's *predicted R^2* under a plan is the fraction of its KV variance that is kept exactly or "
        "rebuilt by the plan's linear map; a plan's score is the mean over layers and K/V.\n\n";
  md << "## Paper layout vs similarity plan\n\n";
  md << "| target ratio | paper: layout | paper: ratio | paper: R^2 (K / V / all) | similarity: ratio | similarity: R^2 (K / V / all) | similarity R^2 at the paper's ratio | gain at equal bytes |\n";
  md << "|---|---|---|---|---|---|---|---|\n";
  for (const auto& row : rows)
    md << "| " << fmt(row.ratio, 2) << " | " << row.paper.notes.substr(row.paper.notes.find(':') + 2) << " | "
       << fmt(row.paper.ratio(), 4) << " | " << fmt(row.paper_pred.k_score) << " / " << fmt(row.paper_pred.v_score)
       << " / **" << fmt(row.paper_pred.score) << "** | " << fmt(row.similarity.ratio(), 4) << " | "
       << fmt(row.similarity_pred.k_score) << " / " << fmt(row.similarity_pred.v_score) << " / **"
       << fmt(row.similarity_pred.score) << "** | " << fmt(row.similarity_at_paper_ratio) << " | "
       << fmt(row.similarity_at_paper_ratio - row.paper_pred.score) << " |\n";
  md << "\n![score vs ratio](figures/score_vs_ratio.svg)\n\n";
  md << "The paper's own layout with no local features (`D_local = 0`):\n\n| S | ratio | R^2 K | R^2 V | R^2 all |\n|---|---|---|---|---|\n";
  for (size_t i = 0; i < paper_layouts.size(); ++i)
    md << "| " << paper_layouts[i].first << " | " << fmt(paper_layout_plans[i].ratio(), 4) << " | "
       << fmt(paper_layouts[i].second.k_score) << " | " << fmt(paper_layouts[i].second.v_score) << " | "
       << fmt(paper_layouts[i].second.score) << " |\n";
  for (const auto& row : rows) {
    md << "\n### Ratio " << fmt(row.ratio, 2) << "\n\n![per layer](figures/plan_" << ratio_tag(row.ratio)
       << ".svg)\n\n| layer | paper K | similarity K | paper V | similarity V |\n|---|---|---|---|---|\n";
    for (int64_t l = 0; l < L; ++l)
      md << "| " << l << " | " << describe_kind(row.paper.k[l], D) << " (" << fmt(row.paper_pred.k_layer[l]) << ") | "
         << describe_kind(row.similarity.k[l], D) << " (" << fmt(row.similarity_pred.k_layer[l]) << ") | "
         << describe_kind(row.paper.v[l], D) << " (" << fmt(row.paper_pred.v_layer[l]) << ") | "
         << describe_kind(row.similarity.v[l], D) << " (" << fmt(row.similarity_pred.v_layer[l]) << ") |\n";
  }
  md << "\n## Inter-layer similarity\n\n![inter-layer R^2](figures/inter_layer_r2.svg)\n\n";
  md << "| layer | K from L-1 | K from L-2 | V from L-1 | V from L-2 |\n|---|---|---|---|---|\n";
  for (int64_t l = 0; l < L; ++l) {
    auto cell = [&](const torch::Tensor& t, int64_t back) {
      return l - back >= 0 ? fmt(t[l][l - back].item<double>()) : std::string("-");
    };
    md << "| " << l << " | " << cell(metrics.k.inter_r2, 1) << " | " << cell(metrics.k.inter_r2, 2) << " | "
       << cell(metrics.v.inter_r2, 1) << " | " << cell(metrics.v.inter_r2, 2) << " |\n";
  }
  md << "\n## Intra-layer similarity\n\n![intra-layer R^2](figures/intra_r2.svg)\n\n";
  md << "![K CKA](figures/intra_cka_k.svg)\n\n![V CKA](figures/intra_cka_v.svg)\n\n";
  md << "## Files\n\n- `metrics.json`: every number above and the full matrices (CKA, centred cosine, per-head "
        "inter-layer R^2)\n- `plans/`: paper and similarity plans per ratio; `plan.json`: the similarity plan at ratio "
     << fmt(config.primary_ratio, 2) << "\n- `stats.safetensors`: the accumulated statistics (re-plan with "
        "`echokv-analyze plan`)\n";
  write_text_atomic(join_path(out_dir, "report.md"), md.str());
  std::cerr << "[analyze] wrote " << join_path(out_dir, "report.md") << std::endl;
}

}  // namespace echokv
