// Decode-time compression (DecodingPress): nothing happens while the prompt is prefilled;
// every `interval` decoding steps each head is cut back to its top `target` tokens by the
// scorer, recomputed here from a full cache fed the same tokens; bytes follow by hand.
#include <gtest/gtest.h>

#include <algorithm>

#include "cache/cache_factory.h"
#include "compress/decoding_cache.h"
#include "methods/method_test_util.h"
#include "model/generate.h"
#include "model/model_test_util.h"
#include "model/session.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

TEST(DecodingCompression, CutsEachHeadToItsTopTargetEveryIntervalSteps) {
  auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
  const auto& cfg = model->config();
  const auto ids = stories260k_sampled_ids(1, 44);
  DecodingCompressionOptions o;
  o.scorer = find_token_scorer("knorm");
  o.interval = 4;
  o.target = 20;
  DecodingCompressionCache cache(*model, o);
  prefill(*model, cache, std::vector<int64_t>(ids.begin(), ids.begin() + 30), 8);  // chunks of 8: no decoding steps
  EXPECT_EQ(cache.compressions(), 0);
  EXPECT_EQ(cache.store().head_length(0, 0), 30);
  for (int64_t t = 30; t < 33; ++t) model->forward(torch::tensor({ids[t]}).view({1, 1}), cache);
  EXPECT_EQ(cache.compressions(), 0);  // 3 steps
  model->forward(torch::tensor({ids[33]}).view({1, 1}), cache);
  ASSERT_EQ(cache.compressions(), 1);  // the 4th step: 34 tokens -> 20 per head
  // Until the first compression the stored keys are a full cache's: recompute the top 20 norms.
  auto full = make_full_cache(*model, 34);  // fed exactly as the cache was: chunks of 8, then 4 single tokens
  prefill(*model, *full, std::vector<int64_t>(ids.begin(), ids.begin() + 30), 8);
  for (int64_t t = 30; t < 34; ++t) model->forward(torch::tensor({ids[t]}).view({1, 1}), *full);
  for (int l = 0; l < cfg.num_hidden_layers; ++l)
    for (int64_t h = 0; h < cfg.num_key_value_heads; ++h) {
      auto k = full->keys(l)[0][h];  // [34, D]
      std::vector<std::pair<double, int64_t>> by_norm;
      for (int64_t j = 0; j < 34; ++j) by_norm.emplace_back(k[j].norm().item<double>(), j);
      std::sort(by_norm.begin(), by_norm.end());  // smallest norm = highest knorm score
      std::vector<int64_t> expected;
      for (int i = 0; i < 20; ++i) expected.push_back(by_norm[size_t(i)].second);
      std::sort(expected.begin(), expected.end());
      auto kept = cache.store().head_positions(l, h);
      ASSERT_EQ(kept.size(0), 20);
      EXPECT_EQ(std::vector<int64_t>(kept.data_ptr<int64_t>(), kept.data_ptr<int64_t>() + 20), expected) << l << " " << h;
      // per-head blocks (the compacted store) and one block (the full cache) sum attention in other orders
      EXPECT_LE(max_abs_diff(cache.store().head_keys(l, h)[0], k.index_select(0, torch::tensor(expected))), 1e-4) << l << " " << h;
    }
  const int64_t pair_bytes = 2 * cfg.head_dim * 4, heads = cfg.num_hidden_layers * cfg.num_key_value_heads;
  EXPECT_EQ(cache.bytes(), 20 * heads * pair_bytes);
  EXPECT_EQ(cache.full_bytes(), 34 * heads * pair_bytes);
  EXPECT_EQ(cache.next_position(), 34);  // positions continue: kept keys keep theirs
  for (int64_t t = 34; t < 37; ++t) model->forward(torch::tensor({ids[t]}).view({1, 1}), cache);
  EXPECT_EQ(cache.bytes(), 23 * heads * pair_bytes);
  model->forward(torch::tensor({ids[37]}).view({1, 1}), cache);
  EXPECT_EQ(cache.compressions(), 2);
  EXPECT_EQ(cache.bytes(), 20 * heads * pair_bytes);
  cache.reset();
  EXPECT_EQ(cache.next_position(), 0);
  EXPECT_EQ(cache.bytes(), 0);
}

TEST(DecodingCompression, OnlyStateScorersAndClearOptionErrors) {
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: decoding, scorer: snapkv}"); }).find("scorer of stored keys"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: decoding, target_size: 0}"); }).find("target_size"),
            std::string::npos);
  EXPECT_NO_THROW(make_method_from_yaml("{cache: decoding, scorer: lagkv, compression_interval: 64, target_size: 256}"));
}
