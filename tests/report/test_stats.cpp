// Bootstrap intervals against independent expectations: hand-counted resampling
// distributions, the Student-t interval on large samples, coverage over simulated data, the
// stratified mean as the mean of group means, and paired differences.
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"
#include "report/stats.h"

using namespace echokv;
using namespace echokv::stats;

// {0, 1}: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4, so the 2.5 % point
// is 0 and the 97.5 % point 1.
TEST(Stats, BootstrapOfTwoValuesSpansBoth) {
  const auto ci = bootstrap_mean_ci({0.0, 1.0});
  EXPECT_DOUBLE_EQ(ci.mean, 0.5);
  EXPECT_EQ(ci.n, 2);
  EXPECT_DOUBLE_EQ(ci.lo, 0.0);
  EXPECT_DOUBLE_EQ(ci.hi, 1.0);
  EXPECT_FALSE(ci.excludes_zero());
}

TEST(Stats, BootstrapIsDeterministicAndAgreesWithStudentTOnLargeSamples) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal(3.0, 2.0);
  std::vector<double> x(400);
  for (auto& v : x) v = normal(rng);
  const auto b = bootstrap_mean_ci(x), t = mean_ci(x);
  const auto again = bootstrap_mean_ci(x);
  EXPECT_EQ(b.lo, again.lo);
  EXPECT_EQ(b.hi, again.hi);
  EXPECT_DOUBLE_EQ(b.mean, t.mean);
  // half-widths agree within 10 % (bootstrap uses n, not n - 1, and its own noise)
  EXPECT_NEAR((b.hi - b.lo) / (t.hi - t.lo), 1.0, 0.1);
  EXPECT_NEAR((b.lo + b.hi) / 2, b.mean, 0.05);
}

// Over 200 simulated runs of 100 Bernoulli(0.7) samples, a 95 % interval covers 0.7 in
// about 95 % of them; the percentile bootstrap is slightly narrow at this n, so >= 90 %.
TEST(Stats, BootstrapCoversTheTrueMean) {
  std::mt19937_64 rng(5);
  std::bernoulli_distribution hit(0.7);
  int covered = 0;
  for (int run = 0; run < 200; ++run) {
    std::vector<double> x(100);
    for (auto& v : x) v = hit(rng) ? 100.0 : 0.0;
    const auto ci = bootstrap_mean_ci(x, 2000);
    covered += ci.lo <= 70.0 && 70.0 <= ci.hi;
  }
  EXPECT_GE(covered, 180) << covered << " of 200";
  EXPECT_LE(covered, 198) << covered << " of 200";
}

TEST(Stats, DegenerateSamples) {
  const auto one = bootstrap_mean_ci({42.0});
  EXPECT_EQ(one.n, 1);
  EXPECT_FALSE(one.has_interval());
  EXPECT_EQ(one.text(1), "42.0 (n=1, no CI)");
  EXPECT_TRUE(one.to_json()["ci95"].is_null());
  const auto same = bootstrap_mean_ci({100.0, 100.0, 100.0});
  EXPECT_DOUBLE_EQ(same.lo, 100.0);
  EXPECT_DOUBLE_EQ(same.hi, 100.0);
  const auto none = bootstrap_mean_ci({});
  EXPECT_EQ(none.n, 0);
  EXPECT_FALSE(none.has_interval());
  EXPECT_THROW(bootstrap_mean_ci({1.0, 2.0}, 10), Error);
}

// The average over tasks weighs each task once, whatever its sample count.
TEST(Stats, StratifiedMeanIsTheMeanOfGroupMeans) {
  const std::vector<std::vector<double>> groups = {{100, 100, 100, 100, 0, 0, 0, 0}, {0, 100}};
  const auto ci = stratified_bootstrap_mean(groups);
  EXPECT_DOUBLE_EQ(ci.mean, (50.0 + 50.0) / 2);
  EXPECT_EQ(ci.n, 10);
  ASSERT_TRUE(ci.has_interval());
  EXPECT_LE(ci.lo, ci.mean);
  EXPECT_GE(ci.hi, ci.mean);
  // resampling within groups: the second group's two samples give 0, 50 or 100, the first
  // stays near 50, so the interval cannot exceed [(≈25 + 0) / 2, (≈75 + 100) / 2]
  EXPECT_GE(ci.lo, 10.0);
  EXPECT_LE(ci.hi, 90.0);
  // constant groups: the interval collapses onto the mean of means
  const auto flat = stratified_bootstrap_mean({{10, 10}, {30, 30, 30}});
  EXPECT_DOUBLE_EQ(flat.mean, 20.0);
  EXPECT_DOUBLE_EQ(flat.lo, 20.0);
  EXPECT_DOUBLE_EQ(flat.hi, 20.0);
  // a group of one sample: no interval; an empty group is an error
  EXPECT_FALSE(stratified_bootstrap_mean({{1, 2}, {3}}).has_interval());
  EXPECT_THROW(stratified_bootstrap_mean({{1, 2}, {}}), Error);
}

TEST(Stats, PairedBootstrap) {
  const std::vector<double> a = {80, 90, 70, 60, 85}, b = {75, 85, 65, 55, 80};
  const auto d = paired_bootstrap(a, b);
  EXPECT_DOUBLE_EQ(d.mean, 5.0);
  EXPECT_DOUBLE_EQ(d.lo, 5.0);  // every pair differs by exactly 5
  EXPECT_DOUBLE_EQ(d.hi, 5.0);
  EXPECT_TRUE(d.excludes_zero());
  const auto tie = paired_bootstrap({100, 0, 100, 0}, {0, 100, 0, 100});
  EXPECT_DOUBLE_EQ(tie.mean, 0.0);
  EXPECT_FALSE(tie.excludes_zero());
  EXPECT_THROW(paired_bootstrap({1, 2}, {1}), Error);
  // JSON round trip
  const auto back = MeanCI::from_json(d.to_json());
  EXPECT_EQ(back.n, d.n);
  EXPECT_DOUBLE_EQ(back.lo, d.lo);
  EXPECT_EQ(d.to_json()["method"], "bootstrap");
  EXPECT_EQ(d.text(1), "5.0 [5.0, 5.0] (n=5)");
}
