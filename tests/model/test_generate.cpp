#include <cmath>

#include <gtest/gtest.h>

#include "cache/cache_factory.h"
#include "core/error.h"
#include "model/generate.h"
#include "model/model_test_util.h"
#include "model/random_model.h"

using namespace echokv;

namespace {

torch::Tensor probs_logits(std::vector<double> p) {
  auto t = torch::tensor(p, torch::kFloat64).log().to(torch::kFloat32);
  return t;
}

TEST(Sampler, GreedyIsArgmax) {
  Sampler s(SamplingOptions{});
  EXPECT_EQ(s.next(torch::tensor({0.1f, 2.0f, -1.0f, 1.9f})), 1);
}

TEST(Sampler, FrequenciesFollowTemperatureOneSoftmax) {
  SamplingOptions o;
  o.greedy = false;
  o.seed = 5;
  Sampler s(o);
  auto logits = probs_logits({0.5, 0.3, 0.2});
  std::vector<int> counts(3, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) counts[s.next(logits)]++;
  EXPECT_NEAR(counts[0] / double(n), 0.5, 0.02);
  EXPECT_NEAR(counts[1] / double(n), 0.3, 0.02);
  EXPECT_NEAR(counts[2] / double(n), 0.2, 0.02);
}

TEST(Sampler, TopKAndTopPFollowHfSemantics) {
  auto logits = probs_logits({0.4, 0.3, 0.2, 0.1});
  SamplingOptions o;
  o.greedy = false;
  o.top_k = 2;
  Sampler k2(o);
  for (int i = 0; i < 500; ++i) EXPECT_LT(k2.next(logits), 2);
  // top_p = 0.65: sorted ascending cumulative = .1 .3 .6 1.0; drop those <= 0.35 -> {0.1, 0.2}
  // are dropped, tokens 0 and 1 remain.
  o.top_k = 0;
  o.top_p = 0.65;
  Sampler p(o);
  std::vector<int> seen(4, 0);
  for (int i = 0; i < 2000; ++i) seen[p.next(logits)]++;
  EXPECT_GT(seen[0], 0);
  EXPECT_GT(seen[1], 0);
  EXPECT_EQ(seen[2], 0);
  EXPECT_EQ(seen[3], 0);
  // A tiny top_p always keeps at least the most likely token.
  o.top_p = 1e-6;
  Sampler tiny(o);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(tiny.next(logits), 0);
}

TEST(Sampler, SameSeedSameTokensAndBadOptionsRejected) {
  SamplingOptions o;
  o.greedy = false;
  o.seed = 42;
  o.temperature = 0.7;
  auto logits = torch::randn({50});
  Sampler a(o), b(o);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(a.next(logits), b.next(logits));
  o.temperature = 0;
  EXPECT_THROW(Sampler{o}, Error);
  o.temperature = 1;
  o.top_p = 1.5;
  EXPECT_THROW(Sampler{o}, Error);
}

TEST(Generate, StopsAtStopIdAndAtMaxNewTokens) {
  auto model = make_random_model(echokv::testing::tiny_config(), 9);
  GenerateOptions opt;
  opt.max_new_tokens = 12;
  auto cache = make_full_cache(*model, 32);
  auto first = generate(*model, *cache, {1, 2, 3}, opt);
  ASSERT_EQ(first.tokens.size(), 12u);
  EXPECT_EQ(first.stop_reason, "max_new_tokens");
  // Stop at the 4th token generated: the same prefix, ending with the stop id.
  opt.stop_ids = {first.tokens[3]};
  auto c2 = make_full_cache(*model, 32);
  auto stopped = generate(*model, *c2, {1, 2, 3}, opt);
  EXPECT_EQ(stopped.stop_reason, "stop_id");
  auto first_hit = std::find(first.tokens.begin(), first.tokens.end(), first.tokens[3]) - first.tokens.begin();
  EXPECT_EQ(stopped.tokens, std::vector<int64_t>(first.tokens.begin(), first.tokens.begin() + first_hit + 1));
  // Prompt + generated tokens were cached, except the last token (never fed back).
  EXPECT_EQ(c2->next_position(), 3 + static_cast<int64_t>(stopped.tokens.size()) - 1);
}

// HF's min_length: no stop id among the first min_new_tokens tokens (their logits are -inf),
// then the stop applies again; the tokens after are greedy on the remaining logits.
TEST(Generate, MinNewTokensForbidsStopIdsAtFirst) {
  auto model = make_random_model(echokv::testing::tiny_config(), 9);
  GenerateOptions opt;
  opt.max_new_tokens = 6;
  auto c1 = make_full_cache(*model, 32);
  const auto free_run = generate(*model, *c1, {1, 2, 3}, opt);
  opt.stop_ids = {free_run.tokens[0]};  // the greedy first token becomes a stop id
  auto c2 = make_full_cache(*model, 32);
  const auto stopped = generate(*model, *c2, {1, 2, 3}, opt);
  EXPECT_EQ(stopped.tokens.size(), 1u);
  opt.min_new_tokens = 1;
  auto c3 = make_full_cache(*model, 32);
  const auto held = generate(*model, *c3, {1, 2, 3}, opt);
  ASSERT_FALSE(held.tokens.empty());
  EXPECT_NE(held.tokens[0], free_run.tokens[0]);
  // the first token is the argmax over the logits without the stop id (plain recomputation)
  auto c4 = make_full_cache(*model, 32);
  auto logits = prefill(*model, *c4, {1, 2, 3}, 512).clone();
  logits[free_run.tokens[0]] = -INFINITY;
  EXPECT_EQ(held.tokens[0], logits.argmax().item<int64_t>());
}

}  // namespace
