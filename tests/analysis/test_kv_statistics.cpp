// Streaming KV statistics against direct computation on the full matrices, and the linear
// predictability metrics on synthetic K/V with known structure.
#include <fstream>

#include <gtest/gtest.h>

#include "analysis/head_metrics.h"
#include "analysis/kv_statistics.h"
#include "analysis/linear_predictability.h"
#include "analysis/plan_search.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

// Full-matrix covariance, float64: [N, F] x [N, G] -> [F, G].
torch::Tensor direct_cov(const torch::Tensor& a, const torch::Tensor& b) {
  auto ac = a - a.mean(0), bc = b - b.mean(0);
  return ac.t().mm(bc) / double(a.size(0));
}

// Direct least squares with intercept: fraction of y's variance explained (variance-weighted).
double direct_r2(const torch::Tensor& x, const torch::Tensor& y) {
  auto design = torch::cat({x, torch::ones({x.size(0), 1}, x.options())}, 1);
  auto w = std::get<0>(torch::linalg_lstsq(design, y, c10::nullopt, c10::string_view("gelsd")));
  auto resid = y - design.mm(w);
  auto yc = y - y.mean(0);
  return 1.0 - resid.pow(2).sum().item<double>() / yc.pow(2).sum().item<double>();
}

void feed(KVStatistics& stats, const std::vector<torch::Tensor>& layers, int64_t chunk) {
  const int64_t n = layers[0].size(0);
  for (int64_t s = 0; s < n; s += chunk)
    for (KVKind kind : {KVKind::Key, KVKind::Value})
      for (size_t l = 0; l < layers.size(); ++l) {
        auto rows = layers[l].slice(0, s, std::min(n, s + chunk));
        stats.add(kind, int(l), kind == KVKind::Key ? rows : rows * 2.0 + 1.0);
      }
}

}  // namespace

TEST(KVStatistics, StreamingEqualsDirectComputation) {
  torch::manual_seed(3);
  const int64_t N = 3000, F = 12;
  std::vector<torch::Tensor> layers;
  auto mix = torch::randn({F, F}, torch::kFloat64);
  layers.push_back(torch::randn({N, F}, torch::kFloat64) * 3 + 50);  // large mean: tests the shift
  for (int l = 1; l < 4; ++l) layers.push_back(layers[l - 1].mm(mix) * 0.3 + torch::randn({N, F}, torch::kFloat64));
  KVStatistics stats(4, F, 2);
  feed(stats, layers, 257);  // uneven chunks
  EXPECT_EQ(stats.count(), N);
  for (int a = 0; a < 4; ++a) {
    EXPECT_LE(max_abs_diff(stats.mean(KVKind::Key, a), layers[a].mean(0)), 1e-9);
    for (int b = std::max(0, a - 2); b <= a; ++b) {
      auto want = direct_cov(layers[a], layers[b]);
      EXPECT_LE(max_abs_diff(stats.covariance(KVKind::Key, a, b), want), 1e-8 * want.abs().max().item<double>());
      EXPECT_LE(max_abs_diff(stats.covariance(KVKind::Key, b, a), want.t()), 1e-8 * want.abs().max().item<double>());
      // Values were fed as 2x + 1: covariance scales by 4.
      EXPECT_LE(max_abs_diff(stats.covariance(KVKind::Value, a, b), want * 4.0), 4e-8 * want.abs().max().item<double>());
    }
  }
  EXPECT_THROW(stats.covariance(KVKind::Key, 3, 0), std::exception);  // outside the window

  // Predictability from statistics == direct least squares on the full matrices.
  auto p = linear_predictability(stats, KVKind::Key, {{2, range_indices(0, F)}, {3, range_indices(0, 4)}},
                                 {{3, range_indices(4, F)}}, 0.0);
  auto x = torch::cat({layers[2], layers[3].slice(1, 0, 4)}, 1);
  EXPECT_NEAR(p.r2(), direct_r2(x, layers[3].slice(1, 4, F)), 1e-8);
  auto q = linear_predictability(stats, KVKind::Key, {{1, range_indices(0, F)}}, {{3, range_indices(0, F)}}, 0.0);
  EXPECT_NEAR(q.r2(), direct_r2(layers[1], layers[3]), 1e-8);

  // Save / load round trip is exact.
  TempDir tmp;
  stats.save(tmp.file("s.safetensors"));
  auto back = KVStatistics::load(tmp.file("s.safetensors"));
  EXPECT_EQ(back.count(), N);
  EXPECT_TRUE(torch::equal(back.covariance(KVKind::Value, 3, 1), stats.covariance(KVKind::Value, 3, 1)));
}

TEST(KVStatistics, LoadRejectsOtherFiles) {
  TempDir tmp;
  {
    KVStatistics stats(2, 4, 1);
    stats.save(tmp.file("ok.safetensors"));
  }
  std::ofstream(tmp.file("junk.safetensors")) << "not a safetensors file";
  try {
    KVStatistics::load(tmp.file("junk.safetensors"));
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(tmp.file("junk.safetensors")), std::string::npos) << e.what();
  }
}

// Synthetic K/V: layer 0 independent random heads; layer 1 heads 0,1 random, heads 2,3 exact
// linear functions of all of layer 0; layer 2 head 0 random, heads 1..3 exact rank-2 functions
// of head 0 (so only head 0 determines the others).
class SyntheticHeads : public ::testing::Test {
 protected:
  static constexpr int64_t N = 6000, H = 4, D = 4, F = H * D;
  void SetUp() override {
    torch::manual_seed(11);
    auto r = [](int64_t n, int64_t f) { return torch::randn({n, f}, torch::kFloat64); };
    layers.push_back(r(N, F) + 2.0);
    auto l1 = r(N, F);
    l1.slice(1, 2 * D, 4 * D).copy_(layers[0].mm(r(F, 2 * D)));
    layers.push_back(l1);
    auto l2 = r(N, F);
    for (int h = 1; h < H; ++h) l2.slice(1, h * D, (h + 1) * D).copy_(l2.slice(1, 0, D).mm(r(D, 2).mm(r(2, D))));
    layers.push_back(l2);
    stats = KVStatistics(3, F, 2);
    feed(stats, layers, 1000);
  }
  std::vector<torch::Tensor> layers;
  KVStatistics stats;
};

TEST_F(SyntheticHeads, MetricsFindTheLinearStructure) {
  auto m = compute_head_metrics(stats, D, 1e-9);
  for (KVKind kind : {KVKind::Key, KVKind::Value}) {
    const auto& k = m.at(kind);
    // Exact functions: R^2 = 1.
    EXPECT_NEAR(k.inter_head_r2[1][0][2].item<double>(), 1.0, 1e-6);
    EXPECT_NEAR(k.inter_head_r2[1][0][3].item<double>(), 1.0, 1e-6);
    for (int h = 1; h < H; ++h) EXPECT_NEAR(k.intra_r2[2][h].item<double>(), 1.0, 1e-6);
    // Independent random heads: R^2 near 0 (in-sample bias ~ inputs / N = 12 / 6000).
    for (int h = 0; h < H; ++h) EXPECT_LT(k.intra_r2[0][h].item<double>(), 0.01);
    EXPECT_LT(k.inter_head_r2[1][0][0].item<double>(), 0.01);
    // CKA: a head with itself is 1; independent heads near 0.
    EXPECT_NEAR(k.cka[0][1][1].item<double>(), 1.0, 1e-9);
    EXPECT_LT(k.cka[0][0][1].item<double>(), 0.02);
    EXPECT_GT(k.cka[2][0][1].item<double>(), 0.2);
    EXPECT_TRUE(std::isnan(k.inter_r2[0][0].item<double>()));
  }
}

TEST_F(SyntheticHeads, SimilarityPlanKeepsTheSourceHeads) {
  // Budget for exactly: layer 0 global (4 heads), layer 1 keeps heads 0,1, layer 2 keeps head 0.
  SimilaritySearchOptions o;
  o.target_ratio = 7.0 / 12.0;
  o.ridge = 1e-9;
  auto plan = similarity_plan(stats, PlanShape{3, H, D}, o);
  EXPECT_NEAR(plan.ratio(), 7.0 / 12.0, 1e-12);
  for (KVKind kind : {KVKind::Key, KVKind::Value}) {
    EXPECT_TRUE(plan.at(0, kind).global);
    EXPECT_EQ(plan.at(1, kind).kept, (std::vector<FeatureRange>{{0, 2 * D}}));
    EXPECT_EQ(plan.at(1, kind).sources, std::vector<int>{0});
    EXPECT_EQ(plan.at(2, kind).kept, (std::vector<FeatureRange>{{0, D}}));
  }
  auto pred = predict_plan(stats, plan, 1e-9);
  EXPECT_NEAR(pred.score, 1.0, 1e-6);
  // Keeping a rebuilt head instead of its source, same bytes, loses variance.
  auto other = plan;
  for (KVKind kind : {KVKind::Key, KVKind::Value}) other.at(2, kind).kept = {{D, 2 * D}};
  const auto worse = predict_plan(stats, other, 1e-9);
  EXPECT_LT(worse.layer(KVKind::Key)[2], 0.9);
  EXPECT_LT(worse.score, pred.score - 0.02);
}

TEST_F(SyntheticHeads, SimilarityPlanRatioWithinOneHead) {
  for (double r : {0.95, 0.8, 0.6, 0.5, 0.4}) {
    SimilaritySearchOptions o;
    o.target_ratio = r;
    auto plan = similarity_plan(stats, PlanShape{3, H, D}, o);
    plan.validate();
    EXPECT_LE(plan.ratio(), r + 1e-12) << r;
    EXPECT_GE(plan.ratio(), r - double(D) / double(2 * 3 * F)) << r;  // slack below one head
  }
}
