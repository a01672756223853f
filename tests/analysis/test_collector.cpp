// Collection on a real model: the observer sees exactly the model's pre-RoPE K/V, resume
// after an interruption gives the same statistics, and echokv-analyze writes every output.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analysis/collector.h"
#include "cache/cache_factory.h"
#include "core/files.h"
#include "echo/head_plan.h"
#include "io/safetensors.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

std::string write_config(const TempDir& tmp, const std::string& model, const std::string& extra = "") {
  const std::string path = tmp.file("analyze.yaml");
  std::ofstream(path) << "model: " << model << "\n"
                      << "calibration:\n  source: ids\n  ids_file: " << model
                      << "/expected.safetensors\n  ids_tensor: sampled_ids\n  sequences: 4\n  seq_len: 96\n"
                      << "  chunk: 40\n"
                      << "analysis:\n  window: 4\n  skip_first: 4\n"
                      << "plans:\n  ratios: [0.7, 0.5]\n  primary_ratio: 0.5\n"
                      << extra;
  return path;
}

// Captures K/V rows of a forward directly, for comparison.
struct Capture : LayerObserver {
  std::map<int, std::vector<torch::Tensor>> k;
  void on_qkv(int layer, const torch::Tensor&, const torch::Tensor& kk, const torch::Tensor&,
              const torch::Tensor& positions) override {
    k[layer].push_back(kk.permute({0, 2, 1, 3}).reshape({kk.size(2), -1}).index_select(
        0, (positions >= 4).nonzero().view({-1})));
  }
};

}  // namespace

TEST(Collector, StatisticsOfStories260KMatchDirectCaptureAndResume) {
  const std::string model_dir = require_fixture("fixtures/reference/stories260K");
  TempDir tmp;
  auto config = AnalyzeConfig::load(write_config(tmp, model_dir));
  auto model = LlamaModel::load(model_dir);
  CalibrationData data(config.calibration, config.model, *model);
  ASSERT_EQ(data.size(), 4);
  CollectOptions quiet;
  quiet.progress = false;
  auto full = collect_kv_statistics(config, *model, data, tmp.file("full"), quiet);
  ASSERT_TRUE(full.complete);
  EXPECT_EQ(full.stats.count(), 4 * (96 - 4));

  // Direct: run the same sequences in one piece, capture layer-2 keys, covariance by hand.
  Capture cap;
  {
    torch::NoGradGuard ng;
    for (int64_t i = 0; i < 4; ++i) {
      auto ids = data.sequence(i);
      auto cache = make_full_cache(*model, 96);
      ForwardOptions fo;
      fo.observer = &cap;
      model->forward(torch::tensor(ids).view({1, -1}), *cache, fo);
    }
  }
  auto k2 = torch::cat(cap.k[2]).to(torch::kFloat64), k0 = torch::cat(cap.k[0]).to(torch::kFloat64);
  auto direct = (k2 - k2.mean(0)).t().mm(k0 - k0.mean(0)) / double(k2.size(0));
  EXPECT_LE(max_abs_diff(full.stats.covariance(KVKind::Key, 2, 0), direct), 1e-6);

  // Interrupted after 1 and then 2 sequences, resumed: identical statistics.
  CollectOptions part = quiet;
  part.max_sequences_this_run = 1;
  auto first = collect_kv_statistics(config, *model, data, tmp.file("resumed"), part);
  EXPECT_FALSE(first.complete);
  EXPECT_EQ(first.sequences_done, 1);
  part.max_sequences_this_run = 2;
  EXPECT_EQ(collect_kv_statistics(config, *model, data, tmp.file("resumed"), part).sequences_done, 3);
  auto rest = collect_kv_statistics(config, *model, data, tmp.file("resumed"), quiet);
  ASSERT_TRUE(rest.complete);
  EXPECT_EQ(rest.stats.count(), full.stats.count());
  for (int l = 0; l < 5; ++l)
    for (KVKind kind : {KVKind::Key, KVKind::Value})
      EXPECT_TRUE(torch::equal(rest.stats.covariance(kind, l, std::max(0, l - 2)),
                               full.stats.covariance(kind, l, std::max(0, l - 2))));
}

TEST(AnalyzeCli, WritesReportMetricsPlansAndFigures) {
  const std::string model_dir = require_fixture("fixtures/reference/stories260K");
  TempDir tmp;
  const std::string out = tmp.file("out");
  auto r = run_binary("echokv-analyze", "run --config " + write_config(tmp, model_dir) + " --out " + out);
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* f : {"report.md", "metrics.json", "plan.json", "stats.safetensors", "plans/paper-r0.50.json",
                        "plans/similarity-r0.70.json", "figures/intra_cka_k.svg", "figures/intra_cka_v.svg",
                        "figures/inter_layer_r2.svg", "figures/plan_r0.50.svg", "figures/score_vs_ratio.svg"})
    EXPECT_TRUE(file_exists(out + "/" + f)) << f;
  auto plan = HeadPlan::load(out + "/plan.json");
  EXPECT_EQ(plan.shape.num_layers, 5);
  EXPECT_LE(plan.ratio(), 0.5 + 1e-12);
  EXPECT_GE(plan.ratio(), 0.5 - 8.0 / (2 * 5 * 32));
  auto metrics = nlohmann::json::parse(read_text_file(out + "/metrics.json"));
  EXPECT_EQ(metrics["tokens"].get<int64_t>(), 4 * 92);
  EXPECT_EQ(metrics["metrics"]["k"]["cka"].size(), 5u);
  EXPECT_EQ(metrics["paper_layouts"].size(), 2u);
  for (const auto& p : metrics["plans"]) {
    EXPECT_GE(p["score"].get<double>(), 0.0);
    EXPECT_LE(p["score"].get<double>(), 1.0 + 1e-9);
  }
  const auto md = read_text_file(out + "/report.md");
  EXPECT_NE(md.find("Paper layout vs similarity plan"), std::string::npos);
  EXPECT_NE(md.find("figures/inter_layer_r2.svg"), std::string::npos);

  // `plan` re-plans from the saved statistics at any ratio.
  auto p = run_binary("echokv-analyze", "plan --stats " + out + "/stats.safetensors --model " + model_dir +
                                            " --ratio 0.4 --out " + tmp.file("p04.json"));
  ASSERT_EQ(p.status, 0) << p.out;
  EXPECT_NEAR(HeadPlan::load(tmp.file("p04.json")).ratio(), 0.4, 8.0 / 320 + 1e-12);
}

TEST(AnalyzeCli, BadConfigsGetOneClearError) {
  const std::string model_dir = require_fixture("fixtures/reference/stories260K");
  TempDir tmp;
  auto r = run_binary("echokv-analyze", "run --config " + write_config(tmp, model_dir, "colour: blue\n") + " --out " +
                                            tmp.file("o"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("unknown key 'colour'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("analyze.yaml"), std::string::npos) << r.out;
  std::ofstream(tmp.file("analyze.yaml")) << "model: " << model_dir << "\ncalibration:\n  source: ids\n";
  r = run_binary("echokv-analyze", "run --config " + tmp.file("analyze.yaml") + " --out " + tmp.file("o"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("needs calibration.ids_file"), std::string::npos) << r.out;
}
