// EchoKV combined with the other axes, on a random model whose reconstructors are exact by
// construction (so EchoKV alone equals the full cache):
//   echo x KVzip : per-layer token masks over the EchoKV cache (evict_echo_tokens) attend exactly
//                  like the retain-mode full cache with the same masks; bytes drop what no reader
//                  needs (hand count);
//   hybrid       : key channels pruned before RoPE in the EchoKV cache's global key stores
//                  (prune_echo_keys) attend exactly like the same channels zeroed after RoPE in
//                  a full cache (PrunedKeyCache).
#include <gtest/gtest.h>

#include <cmath>

#include "cache/cache_factory.h"
#include "compress/kvzip_eviction.h"
#include "compress/observation_window.h"
#include "compress/think.h"
#include "echo/echo_cache.h"
#include "methods/echo_parts.h"
#include "model/model_test_util.h"
#include "model/random_model.h"
#include "echo/exact_echo_model.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

struct ExactModel : ExactEchoModel {
  explicit ExactModel(bool compress_keys) : ExactEchoModel(33, 8, compress_keys) {}
  std::unique_ptr<EchoCache> echo(int64_t sink, int64_t recent) const { return echo_cache(sink, recent, 16); }
};

std::vector<int64_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  auto t = torch::randint(3, vocab, {n}, torch::kInt64);
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n};
}

torch::Tensor feed(LlamaModel& model, KVCache& cache, const std::vector<int64_t>& ids) {
  std::vector<torch::Tensor> out;
  for (int64_t t : ids) out.push_back(model.forward(torch::tensor({t}).view({1, 1}), cache)[0]);
  return torch::cat(out);
}

}  // namespace

TEST(EchoKvzip, TokenMasksAttendLikeTheMaskedFullCacheAndBytesDropWhatNoReaderNeeds) {
  ExactModel m(true);
  const auto& cfg = m.config;
  const int64_t S = 2, R = 6, begin = 1, n_ctx = 40, prompt = 48;
  const auto ids = random_ids(prompt + 10, cfg.vocab_size, 5);
  const std::vector<int64_t> head(ids.begin(), ids.begin() + prompt), tail(ids.begin() + prompt, ids.end());
  torch::manual_seed(9);
  std::vector<torch::Tensor> keep;  // per layer [n_ctx]
  for (int l = 0; l < cfg.num_hidden_layers; ++l) keep.push_back(torch::rand({n_ctx}) < 0.4 + 0.2 * l);
  auto echo = evict_echo_tokens(m.echo(S, R));
  m.model->forward(torch::tensor(head).view({1, -1}), *echo);
  echo->set_keep(begin, keep);
  MaskedFullCache masked(make_full_cache(*m.model, 64));
  m.model->forward(torch::tensor(head).view({1, -1}), masked);
  std::vector<torch::Tensor> pair_keep;
  for (const auto& k : keep) pair_keep.push_back(k.view({1, -1}).expand({cfg.num_key_value_heads, n_ctx}).clone());
  masked.set_keep(begin, pair_keep);
  EXPECT_LE(max_abs_diff(feed(*m.model, *echo, tail), feed(*m.model, masked, tail)), 1e-4);

  // Hand count after all 58 tokens: sink 0..1, recent 52..57, middle 2..51 (compressed layers).
  const int64_t n = prompt + 10, F = cfg.kv_dim(), D = cfg.head_dim;
  int64_t expected = 0;
  for (int l = 0; l < cfg.num_hidden_layers; ++l)
    for (int kind = 0; kind < 2; ++kind)
      for (int64_t t = 0; t < n; ++t) {
        auto kept_in = [&](int layer) {
          return t < begin || t >= begin + n_ctx || keep[layer][t - begin].item<bool>();
        };
        if (l == 0) {  // global, read by layers 0, 1, 2
          expected += (kept_in(0) || kept_in(1) || kept_in(2)) ? F : 0;
        } else if (l >= 3) {
          expected += kept_in(l) ? F : 0;
        } else {
          const bool whole = t < S || t >= n - R;
          expected += kept_in(l) ? (whole ? F : D) : 0;
        }
      }
  EXPECT_EQ(echo->bytes(), expected * 4);
  EXPECT_EQ(echo->full_bytes(), n * cfg.num_hidden_layers * 2 * F * 4);
}

TEST(EchoHybrid, KeyPairsPrunedBeforeRopeEqualChannelsZeroedAfterRope) {
  ExactModel m(false);  // values-only plan: every key layer global
  const auto& cfg = m.config;
  const int64_t D = cfg.head_dim, prompt = 50, w = 6;
  const auto ids = random_ids(prompt + 8, cfg.vocab_size, 6);
  const std::vector<int64_t> head(ids.begin(), ids.begin() + prompt), tail(ids.begin() + prompt, ids.end());
  auto unpruned = m.echo(2, 6);
  auto wq = prefill_with_window_queries(*m.model, *unpruned, head, w, 16);
  std::vector<torch::Tensor> keys = echo_global_keys(*unpruned);
  const auto channels = think_pair_channels(keys, wq.q, 0.5);
  // Pairs ranked by ||Q_pair|| * ||K_pair|| recomputed by hand for layer 1, KV head 0.
  {
    const int64_t G = cfg.gqa_group(), half = D / 2;
    auto K = keys[1][0].to(torch::kFloat64).view({prompt, cfg.num_key_value_heads, D});
    auto Q = wq.q[1][0].to(torch::kFloat64);
    std::vector<std::pair<double, int64_t>> score;
    for (int64_t p = 0; p < half; ++p) {
      double qs = 0, ks = 0;
      for (int64_t g = 0; g < G; ++g)
        for (int64_t i = 0; i < w; ++i)
          qs += std::pow(Q[g][i][p].item<double>(), 2) + std::pow(Q[g][i][p + half].item<double>(), 2);
      for (int64_t j = 0; j < prompt; ++j) ks += std::pow(K[j][0][p].item<double>(), 2) + std::pow(K[j][0][p + half].item<double>(), 2);
      score.push_back({-std::sqrt(qs) * std::sqrt(ks), p});
    }
    std::sort(score.begin(), score.end());
    for (int64_t r = 0; r < half; ++r) {
      const bool kept = r < half / 2;
      EXPECT_EQ(channels[1][0][score[r].second].item<bool>(), kept);
      EXPECT_EQ(channels[1][0][score[r].second + half].item<bool>(), kept);
    }
  }
  auto echo = prune_echo_keys(std::move(unpruned), channels, prompt - w);
  auto full = make_full_cache(*m.model, 64);
  m.model->forward(torch::tensor(head).view({1, -1}), *full);
  PrunedKeyCache pruned(std::move(full), prompt - w, channels);
  EXPECT_LE(max_abs_diff(feed(*m.model, *echo, tail), feed(*m.model, pruned, tail)), 1e-4);
  // Bytes: the pruned tokens drop D/2 key channels per (layer, head) on top of EchoKV's values.
  auto plain = m.echo(2, 6);
  m.model->forward(torch::tensor(ids).view({1, -1}), *plain);
  EXPECT_EQ(echo->bytes(), plain->bytes() - (prompt - w) * cfg.num_hidden_layers * cfg.num_key_value_heads * (D / 2) * 4);
  // Keys of a compressed layer cannot be pruned, masks must keep RoPE pairs together.
  ExactModel both(true);
  auto e2 = both.echo(2, 6);
  both.model->forward(torch::tensor(head).view({1, -1}), *e2);
  EXPECT_THROW(prune_echo_keys(std::move(e2), channels, 10), Error);
  auto odd = channels;
  odd[0] = odd[0].clone();
  odd[0][0][0] = !odd[0][0][0].item<bool>();
  auto e3 = m.echo(2, 6);
  m.model->forward(torch::tensor(head).view({1, -1}), *e3);
  EXPECT_THROW(prune_echo_keys(std::move(e3), odd, 10), Error);
}
