// SnapKV and ThinK selections recomputed with plain loops over the cached keys and the
// observation window's queries (float64), their budgets, and the caches they produce.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "cache/cache_factory.h"
#include "compress/compacted_cache.h"
#include "compress/observation_window.h"
#include "compress/snapkv.h"
#include "compress/think.h"
#include "model/model_test_util.h"
#include "model/session.h"
#include "methods/method_test_util.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

std::shared_ptr<LlamaModel> stories() {
  return load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
}

std::vector<int64_t> top_indices(const std::vector<double>& score, int64_t k) {
  std::vector<int64_t> idx(score.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  idx.resize(static_cast<size_t>(k));
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace

TEST(SnapKV, SelectionMatchesAPlainLoopComputation) {
  auto model = stories();
  const auto& cfg = model->config();
  const auto ids = stories260k_sampled_ids(1, 60);
  const int64_t n = 60, w = 8, kernel = 5;
  auto full = make_full_cache(*model, n);
  auto wq = prefill_with_window_queries(*model, *full, ids, w, 16);
  ASSERT_EQ(wq.window, w);
  SnapKVOptions o;
  o.ratio = 0.5;
  o.window = w;
  o.kernel = kernel;
  const double scale = 1.0 / std::sqrt(static_cast<double>(cfg.head_dim));
  const auto keep = snapkv_keep(*full, wq.q, scale, o);
  const int64_t capacity = 30, G = cfg.gqa_group();
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    auto K = full->keys(static_cast<int>(l))[0].to(torch::kFloat64);  // [Hkv, n, D]
    auto Q = wq.q[l][0].to(torch::kFloat64);                           // [Hq, w, D]
    for (int64_t h = 0; h < cfg.num_key_value_heads; ++h) {
      std::vector<double> pooled_mean(static_cast<size_t>(n - w), 0.0);
      for (int64_t g = 0; g < G; ++g) {
        std::vector<double> votes(static_cast<size_t>(n - w), 0.0);
        for (int64_t i = 0; i < w; ++i) {
          const int64_t qp = n - w + i;
          std::vector<double> logit(static_cast<size_t>(qp + 1));
          double mx = -1e300, sum = 0;
          for (int64_t j = 0; j <= qp; ++j) {
            logit[j] = (Q[h * G + g][i] * K[h][j]).sum().item<double>() * scale;
            mx = std::max(mx, logit[j]);
          }
          for (int64_t j = 0; j <= qp; ++j) sum += std::exp(logit[j] - mx);
          for (int64_t j = 0; j < n - w; ++j) votes[j] += std::exp(logit[j] - mx) / sum;
        }
        for (int64_t j = 0; j < n - w; ++j) {  // average pool, zero padding counted
          double s = 0;
          for (int64_t t = j - kernel / 2; t <= j + kernel / 2; ++t) s += (t >= 0 && t < n - w) ? votes[t] : 0.0;
          pooled_mean[j] += s / kernel / G;
        }
      }
      const auto expected = top_indices(pooled_mean, capacity - w);
      std::vector<int64_t> got;
      for (int64_t j = 0; j < n - w; ++j)
        if (keep[l][h][j].item<bool>()) got.push_back(j);
      EXPECT_EQ(got, expected) << "layer " << l << " head " << h;
      EXPECT_TRUE(keep[l][h].narrow(0, n - w, w).all().item<bool>());
    }
  }
  o.ratio = 1.0;
  for (const auto& m : snapkv_keep(*full, wq.q, scale, o)) EXPECT_TRUE(m.all().item<bool>());
}

TEST(SnapKV, PromptPrefillKeepsTheBudgetAndRatioOneIsFull) {
  auto model = stories();
  const auto ids = stories260k_sampled_ids(2, 100);
  auto p = prepared_method(*model, "{cache: snapkv, ratio: 0.4, obs_window: 16}")->prefill(*model, ids, {}, 128, 32);
  EXPECT_DOUBLE_EQ(static_cast<double>(p.cache->bytes()) / p.cache->full_bytes(), 0.4);  // 40 of 100 per head
  auto all = prepared_method(*model, "{cache: snapkv, ratio: 1.0, obs_window: 16}")->prefill(*model, ids, {}, 128, 32);
  auto full = prepared_method(*model, "{cache: full}")->prefill(*model, ids, {}, 128, 32);
  EXPECT_LE(max_abs_diff(all.logits, full.logits), 1e-4);
  const std::vector<int64_t> next = {ids[5], ids[6]};
  EXPECT_LE(max_abs_diff(model->forward(torch::tensor(next).unsqueeze(0), *all.cache),
                         model->forward(torch::tensor(next).unsqueeze(0), *full.cache)),
            1e-4);
}

TEST(ThinK, ChannelsMatchAPlainLoopAndPruningIsCountedExactly) {
  auto model = stories();
  const auto& cfg = model->config();
  const auto ids = stories260k_sampled_ids(3, 64);
  const int64_t n = 64, w = 8, D = cfg.head_dim, G = cfg.gqa_group();
  auto full = make_full_cache(*model, n + 8);
  auto wq = prefill_with_window_queries(*model, *full, ids, w, 16);
  ThinKOptions o;
  o.prune = 0.5;
  o.window = w;
  const auto channels = think_channels(*full, wq.q, o);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    auto K = full->keys(static_cast<int>(l))[0].to(torch::kFloat64);
    auto Q = wq.q[l][0].to(torch::kFloat64);
    for (int64_t h = 0; h < cfg.num_key_value_heads; ++h) {
      std::vector<double> score(static_cast<size_t>(D));
      for (int64_t c = 0; c < D; ++c) {
        double qs = 0, ks = 0;
        for (int64_t g = 0; g < G; ++g)
          for (int64_t i = 0; i < w; ++i) qs += std::pow(Q[h * G + g][i][c].item<double>(), 2);
        for (int64_t j = 0; j < n; ++j) ks += std::pow(K[h][j][c].item<double>(), 2);
        score[c] = std::sqrt(qs) * std::sqrt(ks);
      }
      const auto expected = top_indices(score, D / 2);
      std::vector<int64_t> got;
      for (int64_t c = 0; c < D; ++c)
        if (channels[l][h][c].item<bool>()) got.push_back(c);
      EXPECT_EQ(got, expected) << "layer " << l << " head " << h;
    }
  }
  auto keys_before = full->keys(0).clone();
  PrunedKeyCache pruned(std::move(full), n - w, channels);
  // Keys and values: 2 * D per pair; pruned tokens drop D/2 key channels.
  const int64_t pairs = cfg.num_hidden_layers * cfg.num_key_value_heads;
  EXPECT_EQ(pruned.full_bytes(), n * pairs * 2 * D * 4);
  EXPECT_EQ(pruned.bytes(), pruned.full_bytes() - (n - w) * pairs * (D / 2) * 4);
  EXPECT_DOUBLE_EQ(think_stored_ratio(0.5, 32), 0.75);
  EXPECT_DOUBLE_EQ(think_prune_for_ratio(0.75, 32), 0.5);
  EXPECT_DOUBLE_EQ(think_prune_for_ratio(0.7, 32), 0.59375);  // floor(0.6 * 32) = 19 channels
  EXPECT_THROW(think_prune_for_ratio(0.4, 32), Error);
}

TEST(ThinK, PruneZeroIsTheFullCacheAndPruningZeroesOnlyOldKeys) {
  auto model = stories();
  const auto& cfg = model->config();
  const auto ids = stories260k_sampled_ids(0, 70);
  auto p = prepared_method(*model, "{cache: think, prune: 0.0, obs_window: 8}")->prefill(*model, ids, {}, 80, 32);
  auto f = prepared_method(*model, "{cache: full}")->prefill(*model, ids, {}, 80, 32);
  const std::vector<int64_t> next = {ids[3]};
  EXPECT_LE(max_abs_diff(model->forward(torch::tensor(next).unsqueeze(0), *p.cache),
                         model->forward(torch::tensor(next).unsqueeze(0), *f.cache)),
            1e-4);
  EXPECT_EQ(p.cache->bytes(), p.cache->full_bytes());
  auto full = make_full_cache(*model, 80);
  auto wq = prefill_with_window_queries(*model, *full, ids, 8, 32);
  ThinKOptions o;
  o.prune = 0.75;
  auto channels = think_channels(*full, wq.q, o);
  auto before = full->keys(1).clone();
  FullCache* raw = full.get();
  PrunedKeyCache pruned(std::move(full), 62, channels);
  auto after = raw->keys(1);
  auto drop = channels[1].logical_not().view({1, cfg.num_key_value_heads, 1, cfg.head_dim});
  EXPECT_EQ(after.narrow(2, 0, 62).masked_select(drop.expand({1, -1, 62, -1})).abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(after.narrow(2, 62, 8).equal(before.narrow(2, 62, 8)));
  EXPECT_TRUE(after.narrow(2, 0, 62).masked_select(drop.logical_not().expand({1, -1, 62, -1}))
                  .equal(before.narrow(2, 0, 62).masked_select(drop.logical_not().expand({1, -1, 62, -1}))));
}
