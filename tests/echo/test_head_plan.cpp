// HeadPlan: the paper's layouts and ratios (checked against the paper's table), exact byte
// accounting, JSON round trip and strict rejection of invalid plans.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/files.h"
#include "echo/head_plan.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {
const PlanShape kLlama8B{32, 8, 128};
}  // namespace

TEST(HeadPlan, PaperLayoutsMatchThePaperTable) {
  // Paper Table (App. B): 0.7 -> S=2, D_local=384; 0.5 -> S=2, 0; 0.3 -> S=4, 64.
  struct Row {
    double ratio;
    int S;
    int64_t local, in, out;
  };
  for (const Row& row : {Row{0.7, 2, 384, 1408, 640}, Row{0.5, 2, 0, 1024, 1024}, Row{0.3, 4, 64, 1088, 960}}) {
    auto plan = HeadPlan::paper_for_ratio(kLlama8B, row.ratio, 64);
    EXPECT_EQ(plan.notes, "paper layout: S=" + std::to_string(row.S) + ", D_local=" + std::to_string(row.local));
    EXPECT_TRUE(plan.k[0].global);
    EXPECT_FALSE(plan.k[1].global);
    EXPECT_EQ(plan.input_features(1, KVKind::Key), row.in);
    EXPECT_EQ(plan.output_features(1, KVKind::Value), row.out);
    EXPECT_EQ(plan.k[row.S - 1].sources, std::vector<int>{0});
    EXPECT_TRUE(plan.k[row.S].global);
    // Within one head's share of the target, never above it.
    EXPECT_LE(plan.ratio(), row.ratio + 1e-12);
    EXPECT_GE(plan.ratio(), row.ratio - 128.0 / 1024.0);
  }
  // Hand count for 0.3: 8 global layers x 1024 + 24 x 64, for K and V, over 2 x 32 x 1024.
  auto p03 = HeadPlan::paper_for_ratio(kLlama8B, 0.3, 64);
  EXPECT_EQ(p03.stored_features(), 2 * (8 * 1024 + 24 * 64));
  EXPECT_DOUBLE_EQ(p03.ratio(), (8.0 * 1024 + 24 * 64) / (32.0 * 1024));
}

TEST(HeadPlan, UnevenLayerCountsAndFullPlan) {
  const PlanShape five{5, 4, 8};
  auto p = HeadPlan::paper(five, 2, 8);
  // groups {0,1} {2,3} {4}: globals 0, 2, 4.
  EXPECT_TRUE(p.k[4].global);
  EXPECT_EQ(p.k[3].sources, std::vector<int>{2});
  EXPECT_EQ(p.stored_features(), 2 * (3 * 32 + 2 * 8));
  auto full = HeadPlan::full(five);
  EXPECT_TRUE(full.is_full());
  EXPECT_DOUBLE_EQ(full.ratio(), 1.0);
  auto dropped = p.k[1].dropped(32);
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0], (FeatureRange{8, 32}));
}

TEST(HeadPlan, JsonRoundTrip) {
  TempDir tmp;
  auto plan = HeadPlan::paper_for_ratio(kLlama8B, 0.3, 64);
  plan.k[5].kept = {{0, 64}, {256, 384}};  // a hand-edited, still valid layout
  plan.save(tmp.file("plan.json"));
  auto back = HeadPlan::load(tmp.file("plan.json"));
  EXPECT_EQ(back.to_json(), plan.to_json());
  EXPECT_EQ(back.k[5].dropped(1024), (std::vector<FeatureRange>{{64, 256}, {384, 1024}}));
}

TEST(HeadPlan, InvalidPlansAreRejectedWithTheReason) {
  TempDir tmp;
  const auto base = HeadPlan::paper(PlanShape{4, 2, 4}, 2, 4).to_json();
  auto check = [&](nlohmann::json j, const std::string& expected) {
    const std::string path = tmp.file("bad.json");
    write_text_atomic(path, j.dump());
    const auto msg = error_of([&] { HeadPlan::load(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(expected), std::string::npos) << "wanted '" << expected << "' in: " << msg;
  };
  auto j = base;
  j["layers"][1]["k"]["kept"] = {{0, 4}, {2, 6}};
  check(j, "overlap");
  j = base;
  j["layers"][3]["v"]["sources"] = {1};
  check(j, "source layer 1 is not global");
  j = base;
  j["layers"][1]["k"]["sources"] = {3};
  check(j, "must come before");
  j = base;
  j["layers"][1]["k"]["kept"] = {{0, 9}};
  check(j, "outside [0, 8)");
  j = base;
  j["extra"] = 1;
  check(j, "unknown key 'extra'");
  j = base;
  j["ratio"] = 0.5;
  check(j, "ratio says 0.5");
  j = base;
  j["layers"].erase(2);
  check(j, "'layers' has 3 entries");
  j = base;
  j["layers"][1]["k"]["role"] = "half";
  check(j, "role must be");
  j = base;
  j["format"] = "something-else";
  check(j, "format is");
  j = base;
  j["layers"][1]["k"] = {{"role", "compressed"}, {"kept", nlohmann::json::array()}, {"sources", nlohmann::json::array()}};
  check(j, "nothing to rebuild from");
  j = base;
  j["layers"][1]["k"]["kept"] = {{0, 2.7}};  // was read as 2
  check(j, "key 'kept' in layers[1].k must hold integers");
  j = base;
  j["shape"]["head_dim"] = 1e308;  // was undefined behaviour
  check(j, "key 'head_dim' in shape must hold integers");
  j = base;
  j["layers"][3]["v"]["sources"] = {0.5};
  check(j, "must hold integers");
  write_text_atomic(tmp.file("broken.json"), "{\"format\": ");
  EXPECT_NE(error_of([&] { HeadPlan::load(tmp.file("broken.json")); }).find("not valid JSON"), std::string::npos);
}
