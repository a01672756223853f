#include <cmath>

#include <gtest/gtest.h>

#include "cache/cache_factory.h"
#include "model/attention.h"
#include "model/llama.h"
#include "model/random_model.h"
#include "model/model_test_util.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

torch::Tensor random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::randint(0, vocab, {1, n}, gen, torch::kInt64);
}

TEST(Decode, IncrementalDecodeEqualsFullRecompute) {
  for (const auto& device : test_devices()) {
    for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      auto model = make_random_model(tiny_config(), 7, device, dtype);
      auto ids = random_ids(50, 97, 1).to(device);
      auto full = model->forward(ids, *make_full_cache(*model, 50));  // [1, 50, V]
      auto cache = make_full_cache(*model, 4);  // grows while decoding
      auto prompt = model->forward(ids.narrow(1, 0, 20), *cache);
      std::vector<torch::Tensor> steps = {prompt};
      for (int64_t t = 20; t < 50; ++t) steps.push_back(model->forward(ids.narrow(1, t, 1), *cache));
      const double scale = full.abs().max().item<double>();
      EXPECT_LE(max_abs_diff(torch::cat(steps, 1), full), logit_tolerance(dtype, scale)) << device << " " << dtype;
      EXPECT_EQ(cache->next_position(), 50);
    }
  }
}

TEST(Decode, MultiBlockOnlineSoftmaxEqualsSingleBlock) {
  auto model = make_random_model(tiny_config(), 3);
  auto ids = random_ids(40, 97, 2);
  auto want = model->forward(ids, *make_full_cache(*model, 40));
  BlockSplitCache split(make_full_cache(*model, 40), 7);
  auto got = model->forward(ids.narrow(1, 0, 25), split);
  std::vector<torch::Tensor> parts = {got};
  for (int64_t t = 25; t < 40; ++t) parts.push_back(model->forward(ids.narrow(1, t, 1), split));
  EXPECT_LE(max_abs_diff(torch::cat(parts, 1), want), 1e-5);
}

TEST(Decode, FullCacheBytesAreExact) {
  auto cfg = tiny_config();
  auto model = make_random_model(cfg, 1);
  auto cache = make_full_cache(*model, 64);
  model->forward(random_ids(13, 97, 3), *cache);
  // 2 (K,V) x layers x kv_heads x head_dim x 4 bytes x tokens
  EXPECT_EQ(cache->bytes(), 2 * 3 * 2 * 8 * 4 * 13);
  cache->reset();
  EXPECT_EQ(cache->bytes(), 0);
  EXPECT_EQ(cache->next_position(), 0);
}

// Hand-computed attention: one KV head, two query heads (GQA), explicit loops in double.
TEST(Attention, SlidingWindowMatchesHandComputedSoftmax) {
  const int64_t t = 7, d = 4, window = 3;
  auto q = torch::randn({1, 2, t, d});
  auto k = torch::randn({1, 1, t, d});
  auto v = torch::randn({1, 1, t, d});
  QueryPositions qpos;
  qpos.positions = torch::arange(t, torch::kInt64);
  qpos.min_position = 0;
  qpos.max_position = t - 1;
  AttentionOptions opt;
  opt.scale = 0.5;
  opt.sliding_window = window;
  for (int64_t block_size : {t, int64_t{2}}) {
    auto out = attend_blocks(
        q, qpos,
        [&](const std::function<void(const KVBlock&)>& visit) { visit_in_blocks(k, v, block_size, visit); },
        opt);
    for (int64_t h = 0; h < 2; ++h) {
      for (int64_t i = 0; i < t; ++i) {
        // keys j with i - window < j <= i
        std::vector<double> w;
        double mx = -1e300;
        for (int64_t j = 0; j <= i; ++j) {
          if (i - j >= window) { w.push_back(-1e300); continue; }
          double s = 0;
          for (int64_t x = 0; x < d; ++x) s += q[0][h][i][x].item<double>() * k[0][0][j][x].item<double>();
          w.push_back(s * 0.5);
          mx = std::max(mx, s * 0.5);
        }
        double z = 0;
        for (auto& s : w) z += (s > -1e299) ? std::exp(s - mx) : 0;
        for (int64_t x = 0; x < d; ++x) {
          double o = 0;
          for (int64_t j = 0; j <= i; ++j)
            if (w[j] > -1e299) o += std::exp(w[j] - mx) / z * v[0][0][j][x].item<double>();
          EXPECT_NEAR(out[0][h][i][x].item<double>(), o, 1e-5) << "block " << block_size << " h" << h << " i" << i;
        }
      }
    }
  }
}

// With one layer and relative RoPE, a Mistral model's output at position i depends only on
// the last W tokens: it equals running those W tokens as a fresh sequence.
TEST(Attention, MistralSlidingWindowSeesOnlyTheLastWTokens) {
  auto cfg = tiny_config("mistral");
  cfg.num_hidden_layers = 1;
  cfg.sliding_window = 5;
  auto model = make_random_model(cfg, 11);
  auto ids = random_ids(16, 97, 4);
  auto full = model->forward(ids, *make_full_cache(*model, 16))[0];
  for (int64_t i = 5; i < 16; ++i) {
    auto window_ids = ids.narrow(1, i - 4, 5);
    auto fresh = model->forward(window_ids, *make_full_cache(*model, 5))[0][4];
    EXPECT_LE(max_abs_diff(full[i], fresh), 1e-4) << "position " << i;
  }
  // Without the window the same weights give different outputs at late positions.
  cfg.sliding_window.reset();
  auto no_window = make_random_model(cfg, 11);
  auto other = no_window->forward(ids, *make_full_cache(*no_window, 16))[0];
  EXPECT_GT(max_abs_diff(other[15], full[15]), 1e-3);
  // Decoding through a split cache with the window gives the same numbers (blocks skipped).
  BlockSplitCache split(make_full_cache(*model, 16), 3);
  std::vector<torch::Tensor> parts;
  for (int64_t t = 0; t < 16; ++t) parts.push_back(model->forward(ids.narrow(1, t, 1), split)[0]);
  EXPECT_LE(max_abs_diff(torch::cat(parts, 0), full), 1e-5);
}

}  // namespace

// Per-head blocks (each KV head's tokens on its own, as compacted caches hand them) give the
// same attention as full-width blocks over the same tokens; gradients flow through both.
TEST(Attention, PerHeadBlocksEqualFullWidthBlocksAndBadCombinationsAreRejected) {
  const int64_t t = 9, d = 4, hkv = 2;
  auto q = torch::randn({1, 4, t, d}, torch::requires_grad());
  auto k = torch::randn({1, hkv, t, d});
  auto v = torch::randn({1, hkv, t, d});
  const QueryPositions qpos = make_query_positions(0, t, torch::kCPU);
  AttentionOptions opt;
  opt.scale = 0.5;
  auto full_width = attend_blocks(
      q, qpos, [&](const std::function<void(const KVBlock&)>& visit) { visit_in_blocks(k, v, 4, visit); }, opt);
  auto per_head_visit = [&](const std::function<void(const KVBlock&)>& visit) {
    for (int64_t h = hkv - 1; h >= 0; --h)  // heads in any order, each in blocks of 4
      visit_in_blocks(k.narrow(1, h, 1), v.narrow(1, h, 1), 4, [&](const KVBlock& b) {
        KVBlock one = b;
        one.head = h;
        one.kv_heads = hkv;
        one.is_only = false;
        visit(one);
      });
  };
  auto per_head = attend_blocks(q, qpos, per_head_visit, opt);
  EXPECT_LE((per_head - full_width).abs().max().item<double>(), 1e-6);
  auto grad_full = torch::autograd::grad({full_width.sum()}, {q})[0];
  auto grad_head = torch::autograd::grad({per_head.sum()}, {q})[0];
  EXPECT_LE((grad_full - grad_head).abs().max().item<double>(), 1e-5);

  auto q_plain = q.detach();
  auto rejects = [&](const std::function<void(KVBlock&)>& spoil, bool also_full_width) {
    return attend_blocks(q_plain, qpos,
                         [&](const std::function<void(const KVBlock&)>& visit) {
                           if (also_full_width) visit_in_blocks(k, v, 4, visit);
                           per_head_visit([&](const KVBlock& b) {
                             KVBlock bad = b;
                             spoil(bad);
                             visit(bad);
                           });
                         },
                         opt);
  };
  // Latent values are only implemented for full-width blocks.
  EXPECT_THROW(rejects([&](KVBlock& b) { b.v_latent = torch::zeros({1, b.k.size(2), 3}); }, false), c10::Error);
  EXPECT_THROW(rejects([&](KVBlock& b) { b.head = hkv; }, false), c10::Error);
  EXPECT_THROW(rejects([&](KVBlock&) {}, true), c10::Error);  // per-head and full-width in one layer
}
