// The context scorers (knorm, random, keydiff, tova, snapkv, observed_attention,
// expected_attention, lagkv, CriticalKV's rescoring) and the budget rules (per head, AdaKV, ChunkKV, PyramidKV) recomputed with plain float64 loops over
// stories260K's cached keys and queries, and the bytes of the methods built on them counted
// by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "cache/cache_factory.h"
#include "compress/compacted_cache.h"
#include "compress/expected_attention.h"
#include "compress/observation_window.h"
#include "compress/token_budgets.h"
#include "compress/token_scores.h"
#include "methods/method_test_util.h"
#include "model/generate.h"
#include "model/model_test_util.h"
#include "model/session.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

std::shared_ptr<LlamaModel> stories() {
  return load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
}

double dot64(const torch::Tensor& a, const torch::Tensor& b) {  // 1-D float64
  double s = 0;
  for (int64_t i = 0; i < a.size(0); ++i) s += a[i].item<double>() * b[i].item<double>();
  return s;
}

// Softmax over logits[0 .. count-1], float64.
std::vector<double> softmax(const std::vector<double>& logits) {
  const double mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double z = 0;
  for (size_t i = 0; i < p.size(); ++i) z += p[i] = std::exp(logits[i] - mx);
  for (auto& x : p) x /= z;
  return p;
}

// Records every chunk's RoPE'd queries (all prompt positions).
struct AllQueries : LayerObserver {
  const Rope& rope;
  std::vector<std::vector<torch::Tensor>> q;  // [layer] -> chunks [Hq, c, D]
  AllQueries(const Rope& r, int layers) : rope(r), q(static_cast<size_t>(layers)) {}
  void on_qkv(int layer, const torch::Tensor& q_pre, const torch::Tensor&, const torch::Tensor&,
              const torch::Tensor& positions) override {
    q[layer].push_back(rope.apply(q_pre, positions)[0].to(torch::kFloat64));
  }
};

// Forwards every chunk to two observers.
struct BothObservers : LayerObserver {
  LayerObserver *a = nullptr, *b = nullptr;
  void on_qkv(int l, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& p) override {
    a->on_qkv(l, q, k, v, p);
    b->on_qkv(l, q, k, v, p);
  }
};

// Records every chunk's pre-RoPE queries.
struct PreRopeQueries : LayerObserver {
  std::vector<std::vector<torch::Tensor>> q;  // [layer] -> chunks [Hq, c, D] float64
  explicit PreRopeQueries(int layers) : q(static_cast<size_t>(layers)) {}
  void on_qkv(int layer, const torch::Tensor& q_pre, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) override {
    q[layer].push_back(q_pre[0].to(torch::kFloat64));
  }
};

struct Prefilled {
  std::shared_ptr<LlamaModel> model;
  std::unique_ptr<FullCache> cache;
  std::vector<int64_t> ids;
};

Prefilled prefilled(int64_t n) {
  Prefilled p;
  p.model = stories();
  p.ids = stories260k_sampled_ids(3, n);
  p.cache = make_full_cache(*p.model, n);
  prefill(*p.model, *p.cache, p.ids, 16);
  return p;
}

}  // namespace

TEST(TokenScores, KnormAndKeyDiffMatchPlainLoops) {
  auto p = prefilled(40);
  for (int l = 0; l < p.model->config().num_hidden_layers; ++l) {
    auto k = p.cache->keys(l)[0].narrow(1, 5, 30);  // [Hkv, 30, D]
    const auto kn = knorm_scores(k), kd = keydiff_scores(k);
    ASSERT_EQ(kn.sizes(), (std::vector<int64_t>{k.size(0), 30}));
    auto k64 = k.to(torch::kFloat64);
    for (int64_t h = 0; h < k.size(0); ++h) {
      std::vector<double> mean(static_cast<size_t>(k.size(2)), 0.0);
      for (int64_t j = 0; j < 30; ++j) {
        const double norm = std::sqrt(dot64(k64[h][j], k64[h][j]));
        EXPECT_NEAR(kn[h][j].item<double>(), -norm, 1e-5);
        for (int64_t d = 0; d < k.size(2); ++d) mean[d] += k64[h][j][d].item<double>() / norm / 30.0;
      }
      const double mean_norm = std::sqrt(std::inner_product(mean.begin(), mean.end(), mean.begin(), 0.0));
      for (int64_t j = 0; j < 30; ++j) {
        double s = 0;
        for (int64_t d = 0; d < k.size(2); ++d) s += k64[h][j][d].item<double>() * mean[d];
        EXPECT_NEAR(kd[h][j].item<double>(), -s / (std::sqrt(dot64(k64[h][j], k64[h][j])) * mean_norm), 1e-5);
      }
    }
  }
}

TEST(TokenScores, RandomIsSeededPerLayerAndUniform) {
  const auto a = random_scores(4, 1000, 7, 0), b = random_scores(4, 1000, 7, 0), c = random_scores(4, 1000, 7, 1);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_FALSE(torch::equal(a, random_scores(4, 1000, 8, 0)));
  EXPECT_GE(a.min().item<float>(), 0.0f);
  EXPECT_LT(a.max().item<float>(), 1.0f);
  EXPECT_NEAR(a.mean().item<double>(), 0.5, 0.02);  // 4000 draws: sd of the mean 0.0046
}

TEST(TokenScores, TovaAndSnapKVWindowMatchPlainLoops) {
  auto model = stories();
  const auto& cfg = model->config();
  const int64_t n = 50, begin = 3, w = 6, kernel = 5, G = cfg.gqa_group(), Hkv = cfg.num_key_value_heads;
  const auto ids = stories260k_sampled_ids(2, n);
  auto full = make_full_cache(*model, n);
  auto wq = prefill_with_window_queries(*model, *full, ids, w, 16);
  const double scale = model->attention_options().scale;
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    auto K = full->keys(l)[0].to(torch::kFloat64);  // [Hkv, n, D]
    auto Q = wq.q[l][0].to(torch::kFloat64);        // [Hq, w, D]
    // TOVA: the last query (window row w-1), every query head's softmax over all n keys, averaged.
    const auto tova = tova_scores(wq.q[l][0].select(1, w - 1), full->keys(l)[0], scale, begin);
    std::vector<double> mean(static_cast<size_t>(n), 0.0);
    for (int64_t h = 0; h < cfg.num_attention_heads; ++h) {
      std::vector<double> logits(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j) logits[j] = dot64(Q[h][w - 1], K[h / G][j]) * scale;
      const auto pr = softmax(logits);
      for (int64_t j = 0; j < n; ++j) mean[j] += pr[j] / double(cfg.num_attention_heads);
    }
    for (int64_t h = 0; h < Hkv; ++h) {
      for (int64_t j = begin; j < n - 1; ++j) EXPECT_NEAR(tova[h][j - begin].item<double>(), mean[j], 1e-5);
      EXPECT_GT(tova[h][n - 1 - begin].item<double>(), tova[h].narrow(0, 0, n - 1 - begin).max().item<double>());
    }
    // kvpress's SnapKV score: window rows' causal softmax, mean over rows, avg-pool (zero pad), mean over group;
    // the window scores the layer's max over every head + 1.
    const auto snap = snapkv_window_scores(wq.q[l][0], full->keys(l)[0], scale, kernel, begin);
    double top = -1e300;
    for (int64_t h = 0; h < Hkv; ++h) {
      std::vector<double> score(static_cast<size_t>(n - w), 0.0);
      for (int64_t g = 0; g < G; ++g) {
        std::vector<double> votes(static_cast<size_t>(n - w), 0.0);
        for (int64_t i = 0; i < w; ++i) {
          const int64_t pos = n - w + i;
          std::vector<double> logits(static_cast<size_t>(pos + 1));
          for (int64_t j = 0; j <= pos; ++j) logits[j] = dot64(Q[h * G + g][i], K[h][j]) * scale;
          const auto pr = softmax(logits);
          for (int64_t j = 0; j < n - w; ++j) votes[j] += pr[j] / double(w);
        }
        for (int64_t j = 0; j < n - w; ++j) {
          double s = 0;
          for (int64_t t = j - kernel / 2; t <= j + kernel / 2; ++t)
            if (t >= 0 && t < n - w) s += votes[t];
          score[j] += s / double(kernel) / double(G);
        }
      }
      for (int64_t j = begin; j < n - w; ++j) EXPECT_NEAR(snap[h][j - begin].item<double>(), score[j], 1e-6);
      top = std::max(top, *std::max_element(score.begin(), score.end()));
    }
    for (int64_t h = 0; h < Hkv; ++h)
      for (int64_t j = n - w; j < n; ++j) EXPECT_NEAR(snap[h][j - begin].item<double>(), top + 1.0, 1e-5);
  }
}

TEST(TokenScores, ObservedAttentionMatchesAPlainLoopOverEveryQuery) {
  auto model = stories();
  const auto& cfg = model->config();
  const int64_t n = 23, G = cfg.gqa_group();
  const auto ids = stories260k_sampled_ids(0, n);
  auto full = make_full_cache(*model, n);
  ObservedAttentionObserver observer(*model, *full, n);
  AllQueries queries(*model->rope(), cfg.num_hidden_layers);
  BothObservers both;
  both.a = &observer;
  both.b = &queries;
  ForwardOptions fo;
  fo.observer = &both;
  for (int64_t s = 0; s < n; s += 5) {  // uneven chunks: 5, 5, 5, 5, 3
    const int64_t len = std::min<int64_t>(5, n - s);
    model->forward(torch::tensor(std::vector<int64_t>(ids.begin() + s, ids.begin() + s + len)).view({1, len}), *full, fo);
  }
  const auto means = observer.take_scores();
  const double scale = model->attention_options().scale;
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    auto Q = torch::cat(queries.q[l], 1);             // [Hq, n, D]
    auto K = full->keys(l)[0].to(torch::kFloat64);   // [Hkv, n, D]
    for (int64_t h = 0; h < cfg.num_key_value_heads; ++h) {
      std::vector<double> received(static_cast<size_t>(n), 0.0);
      for (int64_t g = 0; g < G; ++g)
        for (int64_t i = 0; i < n; ++i) {
          std::vector<double> logits(static_cast<size_t>(i + 1));
          for (int64_t j = 0; j <= i; ++j) logits[j] = dot64(Q[h * G + g][i], K[h][j]) * scale;
          const auto pr = softmax(logits);
          for (int64_t j = 0; j <= i; ++j) received[j] += pr[j];
        }
      for (int64_t j = 0; j < n; ++j)
        EXPECT_NEAR(means[l][h][j].item<double>(), received[j] / double(G * (n - j)), 1e-6) << l << " " << h << " " << j;
    }
  }
}

TEST(TokenScores, ExpectedAttentionMatchesAPlainRecomputation) {
  auto model = stories();
  const auto& cfg = model->config();
  const int64_t n = 37, G = cfg.gqa_group(), D = cfg.head_dim, sinks = 4, future = 512;
  const auto ids = stories260k_sampled_ids(1, n);
  auto full = make_full_cache(*model, n);
  ExpectedAttentionObserver observer(*model, *full, n, ExpectedAttentionOptions{});
  PreRopeQueries queries(cfg.num_hidden_layers);
  BothObservers both;
  both.a = &observer;
  both.b = &queries;
  ForwardOptions fo;
  fo.observer = &both;
  for (int64_t s = 0; s < n; s += 3) {  // chunks of 3: the sinks end inside the second chunk
    const int64_t len = std::min<int64_t>(3, n - s);
    model->forward(torch::tensor(std::vector<int64_t>(ids.begin() + s, ids.begin() + s + len)).view({1, len}), *full, fo);
  }
  const auto scores = observer.take_scores();
  // The averaged rotation, column by column: R e_i = mean over positions n .. n+511 of RoPE(e_i).
  auto basis = torch::eye(D, torch::kFloat32).view({1, 1, D, D});  // rows e_i as tokens
  auto R = torch::zeros({D, D}, torch::kFloat64);
  for (int64_t p = n; p < n + future; ++p) {
    auto rotated = model->rope()->apply(basis.view({1, D, 1, D}), torch::full({1}, p, torch::kInt64));  // [1, D, 1, D]
    R += rotated.view({D, D}).to(torch::kFloat64).t() / double(future);  // column i = RoPE_p(e_i)
  }
  EXPECT_LE((average_rope_rotation(*model->rope(), n, future) - R).abs().max().item<double>(), 1e-6);
  const double scale = model->attention_options().scale;
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    auto Q = torch::cat(queries.q[l], 1);  // [Hq, n, D] pre-RoPE
    auto K = full->keys(l)[0].to(torch::kFloat64), V = full->values(l)[0].to(torch::kFloat64);
    for (int64_t h = 0; h < cfg.num_key_value_heads; ++h) {
      std::vector<double> mean_attn(static_cast<size_t>(n - sinks), 0.0);
      for (int64_t g = 0; g < G; ++g) {
        const int64_t qh = h * G + g;
        std::vector<double> mu(D, 0.0), cov(D * D, 0.0);
        for (int64_t i = sinks; i < n; ++i)
          for (int64_t a = 0; a < D; ++a) mu[a] += Q[qh][i][a].item<double>() / double(n - sinks);
        for (int64_t i = sinks; i < n; ++i)
          for (int64_t a = 0; a < D; ++a)
            for (int64_t b = 0; b < D; ++b)
              cov[a * D + b] += (Q[qh][i][a].item<double>() - mu[a]) * (Q[qh][i][b].item<double>() - mu[b]) / double(n - sinks);
        auto mu_t = torch::tensor(mu, torch::kFloat64), cov_t = torch::tensor(cov, torch::kFloat64).view({D, D});
        auto mu_r = torch::matmul(R, mu_t), cov_r = torch::matmul(torch::matmul(R, cov_t), R.t());
        std::vector<double> z(static_cast<size_t>(n - sinks));
        for (int64_t j = sinks; j < n; ++j) {
          auto k = K[h][j];
          z[j - sinks] = scale * dot64(k, mu_r) + scale * scale / 2 * dot64(k, torch::matmul(cov_r, k));
        }
        const auto pr = softmax(z);
        for (int64_t j = 0; j < n - sinks; ++j) mean_attn[j] += pr[j] / double(G);
      }
      for (int64_t j = sinks; j < n; ++j) {
        const double expected = mean_attn[j - sinks] * std::sqrt(dot64(V[h][j], V[h][j]));
        EXPECT_NEAR(scores[l][h][j].item<double>(), expected, 1e-6 + 1e-4 * expected) << l << " " << h << " " << j;
      }
      // sinks score above every other token of every head (kvpress: the layer's max + 1)
      for (int64_t j = 0; j < sinks; ++j)
        EXPECT_GT(scores[l][h][j].item<double>(), scores[l].narrow(1, sinks, n - sinks).max().item<double>());
    }
  }
}

TEST(TokenScores, LagKVMatchesAPlainLoop) {
  const int64_t H = 2, D = 5, sinks = 4, lag = 8, n = sinks + 3 * lag + 5;  // 3 full partitions + 5 tokens
  torch::manual_seed(11);
  auto keys = torch::randn({H, n, D}), values = torch::randn({H, n, D});
  const auto s = lagkv_scores(keys, values, sinks, lag);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{H, n}));
  auto state_scores = [&](const torch::Tensor& x, int64_t h, int64_t part) {  // softmax'd std, one partition
    std::vector<double> out(lag);
    for (int64_t t = 0; t < lag; ++t) {
      std::vector<double> u(D);
      for (int64_t c = 0; c < D; ++c) {
        double lo = 1e300, hi = -1e300;
        for (int64_t r = 0; r < lag; ++r) {
          const double v = x[h][sinks + (part + 1) * lag + r][c].item<double>();
          lo = std::min(lo, v);
          hi = std::max(hi, v);
        }
        u[c] = (x[h][sinks + part * lag + t][c].item<double>() - lo) / (hi - lo);
      }
      const double m = std::accumulate(u.begin(), u.end(), 0.0) / D;
      double var = 0;
      for (double v : u) var += (v - m) * (v - m) / (D - 1);
      out[t] = std::sqrt(var);
    }
    return softmax(out);
  };
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t j = 0; j < sinks; ++j) EXPECT_EQ(s[h][j].item<float>(), 1.0f);
    for (int64_t j = sinks + 2 * lag; j < n; ++j) EXPECT_EQ(s[h][j].item<float>(), 1.0f) << j;  // no successor
    for (int64_t part = 0; part < 2; ++part) {
      const auto k = state_scores(keys, h, part), v = state_scores(values, h, part);
      for (int64_t t = 0; t < lag; ++t) {
        int64_t rank = 0;  // how many tokens of the partition score lower
        for (int64_t r = 0; r < lag; ++r) rank += (k[r] + v[r]) / 2 < (k[t] + v[t]) / 2;
        EXPECT_FLOAT_EQ(s[h][sinks + part * lag + t].item<float>(), float(rank) / float(lag));
      }
    }
  }
  // shorter than sinks + 2 lags: 1 for sinks, then the ramp (i - sinks) / (n - sinks)
  const auto ramp = lagkv_scores(keys.narrow(1, 0, 14), values.narrow(1, 0, 14), sinks, lag);
  for (int64_t j = 0; j < 14; ++j)
    EXPECT_FLOAT_EQ(ramp[1][j].item<float>(), j < sinks ? 1.0f : float(j - sinks) / float(14 - sinks));
}

TEST(TokenScores, CriticalKVNormsAndTwoStagesMatchPlainLoops) {
  const int64_t Hkv = 2, G = 2, Hq = Hkv * G, D = 3, H = 4, m = 6;
  torch::manual_seed(5);
  auto values = torch::randn({Hkv, m, D}), o_proj = torch::randn({H, Hq * D});
  const auto norms = projected_value_l1_norms(values, o_proj);
  for (int64_t h = 0; h < Hkv; ++h)
    for (int64_t j = 0; j < m; ++j) {
      double expected = 0;
      for (int64_t g = 0; g < G; ++g)
        for (int64_t out = 0; out < H; ++out) {
          double s = 0;
          for (int64_t d = 0; d < D; ++d) s += values[h][j][d].item<double>() * o_proj[out][(h * G + g) * D + d].item<double>();
          expected += std::abs(s) / double(G);
        }
      EXPECT_NEAR(norms[h][j].item<double>(), expected, 1e-5);
    }
  auto scores = torch::rand({Hkv, m});
  const auto two = critical_scores(scores, norms, 2, 1e-4);
  for (int64_t h = 0; h < Hkv; ++h) {
    std::vector<std::pair<float, int64_t>> ranked;
    for (int64_t j = 0; j < m; ++j) ranked.emplace_back(scores[h][j].item<float>(), j);
    std::sort(ranked.rbegin(), ranked.rend());
    for (int64_t r = 0; r < m; ++r) {
      const int64_t j = ranked[r].second;
      const double expected = r < 2 ? std::numeric_limits<float>::max() : (ranked[r].first + 1e-4) * norms[h][j].item<double>();
      EXPECT_NEAR(two[h][j].item<double>(), expected, 1e-6 * std::abs(expected)) << h << " " << j;
    }
  }
}

TEST(TokenBudgets, PerHeadAdaptiveAndChunksMatchPlainSelections) {
  auto scores = random_scores(3, 25, 1, 0);  // distinct values: no ties
  scores[1] *= 0.1;                          // head 1 scores low: AdaKV moves budget away from it
  const int64_t keep = 10;
  const auto per_head = keep_top_per_head(scores, keep);
  for (int64_t h = 0; h < 3; ++h) {
    EXPECT_EQ(per_head[h].sum().item<int64_t>(), keep);
    const double lowest_kept = scores[h].masked_select(per_head[h]).min().item<double>();
    EXPECT_GT(lowest_kept, scores[h].masked_select(per_head[h].logical_not()).max().item<double>());
  }
  // AdaKV: each head's top floor(0.2 x 10) = 2 forced, then the best 30 over all 75 (head, token) pairs.
  const auto ada = keep_head_adaptive(scores, keep, 0.2);
  std::vector<std::tuple<double, int64_t, int64_t>> all;
  for (int64_t h = 0; h < 3; ++h) {
    std::vector<double> s(25);
    for (int64_t j = 0; j < 25; ++j) s[j] = scores[h][j].item<double>();
    std::vector<double> sorted = s;
    std::sort(sorted.rbegin(), sorted.rend());
    for (int64_t j = 0; j < 25; ++j) all.emplace_back(s[j] >= sorted[1] ? 1e30 : s[j], h, j);
  }
  std::sort(all.rbegin(), all.rend());
  auto expected = torch::zeros({3, 25}, torch::kBool);
  for (int i = 0; i < 30; ++i) expected[std::get<1>(all[i])][std::get<2>(all[i])] = true;
  EXPECT_TRUE(torch::equal(ada, expected));
  EXPECT_EQ(ada.sum().item<int64_t>(), 30);
  EXPECT_GE(ada[1].sum().item<int64_t>(), 2);
  EXPECT_LT(ada[1].sum().item<int64_t>(), keep);  // budgets really differ
  // ChunkKV: chunks of 7 over 25 tokens (7, 7, 7, 4); floor(4 x 0.5) = 2 chunks by mean summed score.
  const auto chunks = keep_top_chunks(scores, 0.5, 7);
  std::vector<std::pair<double, int64_t>> cs;
  for (int64_t c = 0; c < 4; ++c) {
    double s = 0;
    const int64_t len = std::min<int64_t>(7, 25 - 7 * c);
    for (int64_t j = 7 * c; j < 7 * c + len; ++j)
      for (int64_t h = 0; h < 3; ++h) s += scores[h][j].item<double>();
    cs.emplace_back(s / double(len), c);
  }
  std::sort(cs.rbegin(), cs.rend());
  for (int64_t j = 0; j < 25; ++j) {
    const bool kept = j / 7 == cs[0].second || j / 7 == cs[1].second;
    for (int64_t h = 0; h < 3; ++h) EXPECT_EQ(chunks[h][j].item<bool>(), kept) << j;
  }
  EXPECT_EQ(keep_top_chunks(scores, 0.01, 7).sum().item<int64_t>() % 3, 0);  // at least one chunk, in every head
  EXPECT_GE(keep_top_chunks(scores, 0.01, 7)[0].sum().item<int64_t>(), 4);
}

TEST(TokenBudgets, PyramidBudgetsByHand) {
  // 4 layers, 192 tokens, half kept, window 8, beta 2: min = 96 / 2 = 48, max = 2 x 96 - 48 = 144,
  // steps (144 - 48) / 3 = 32.
  EXPECT_EQ(pyramid_layer_budgets(4, 192, 0.5, 8, 2), (std::vector<int64_t>{144, 112, 80, 48}));
  // beta 20: min 4.8, max 187.2 >= 192 - 8, so max = 184 and min = 192 - 184 = 8 (kvpress's clip):
  // steps 176 / 3 -> 184, 125.3, 66.7, 8.
  EXPECT_EQ(pyramid_layer_budgets(4, 192, 0.5, 8, 20), (std::vector<int64_t>{184, 125, 67, 8}));
  // a quarter kept, beta 20: min = 48 / 20 = 2.4 < window 8: uniform round(48).
  EXPECT_EQ(pyramid_layer_budgets(4, 192, 0.25, 8, 20), (std::vector<int64_t>(4, 48)));
  // max clipped to n - window: 100 tokens, 0.8 kept, window 4, beta 2: max_cap 84, min 40, max 120 -> 96,
  // min = 160 - 96 = 64; steps 32 / 2 = 16 over 3 layers.
  EXPECT_EQ(pyramid_layer_budgets(3, 100, 0.8, 4, 2), (std::vector<int64_t>{96, 80, 64}));
  // Python's round: 2.5 -> 2 (half to even) in the uniform fallback.
  EXPECT_EQ(pyramid_layer_budgets(2, 5, 0.5, 4, 20), (std::vector<int64_t>{2, 2}));
  EXPECT_THROW(pyramid_layer_budgets(4, 192, 0.5, 8, 0.5), Error);
}

TEST(ScoredEvictionMethods, BytesCountedByHandAndHeadBudgetsDiffer) {
  auto model = stories();
  const auto& cfg = model->config();
  const auto ids = stories260k_sampled_ids(2, 120);
  PromptSpan span;
  span.context_begin = 1;
  span.context_end = 100;  // 99 context tokens, 20 question tokens
  // ratio 0.5: f = (60 - 21) / 99 -> floor(39) context tokens per head on average.
  const int64_t per_head = 1 + 39 + 20;
  const int64_t pair_bytes = 2 * cfg.head_dim * 4;  // a key and a value, float32
  for (const std::string kind :
       {"knorm", "random", "keydiff", "tova", "observed_attention", "expected_attention", "lagkv", "criticalkv", "adakv"}) {
    auto method = prepared_method(*model, "{cache: " + kind + ", ratio: 0.5}");
    auto p = method->prefill(*model, ids, span, 130, 32);
    auto* compact = dynamic_cast<CompactedCache*>(p.cache.get());
    ASSERT_NE(compact, nullptr) << kind;
    int64_t tokens = 0;
    bool differ = false;
    for (int l = 0; l < cfg.num_hidden_layers; ++l)
      for (int64_t h = 0; h < cfg.num_key_value_heads; ++h) {
        tokens += compact->head_length(l, h);
        differ = differ || compact->head_length(l, h) != per_head;
      }
    EXPECT_EQ(tokens, int64_t(cfg.num_hidden_layers) * cfg.num_key_value_heads * per_head) << kind;
    EXPECT_EQ(p.cache->bytes(), tokens * pair_bytes) << kind;
    EXPECT_EQ(p.cache->full_bytes(), int64_t(cfg.num_hidden_layers) * cfg.num_key_value_heads * 120 * pair_bytes) << kind;
    EXPECT_EQ(differ, kind == "adakv") << kind << ": only AdaKV gives heads different budgets";
  }
  // ChunkKV: 99 tokens in chunks of 20 (5 chunks, the last of 19): floor(5 x 39 / 99) = 1 chunk.
  auto chunk = prepared_method(*model, "{cache: chunkkv, ratio: 0.5, scorer: knorm}");
  auto p = chunk->prefill(*model, ids, span, 130, 32);
  const int64_t kept = p.cache->bytes() / pair_bytes / (cfg.num_hidden_layers * cfg.num_key_value_heads) - 21;
  EXPECT_TRUE(kept == 20 || kept == 19) << kept;
}

TEST(ScoredEvictionMethods, OptionErrorsNameTheMethodAndTheProblem) {
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: adakv, scorer: magic}"); }).find("scorer must be one of knorm"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: adakv, alpha_safeguard: 1.5}"); }).find("alpha_safeguard"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: chunkkv, chunk_length: 0}"); }).find("chunk_length"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: random, seed: -1}"); }).find("seed"), std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: knorm, seed: 3}"); }).find("'seed' is not an option of knorm"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: pyramidkv, beta: 0.5}"); }).find("beta"), std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: criticalkv, first_stage_ratio: 2}"); }).find("first_stage_ratio"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: criticalkv, epsilon: -1}"); }).find("epsilon"), std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: expected_attention, future_positions: 0}"); }).find("future_positions"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: adakv, scorer: knorm, value_norm: false}"); })
                .find("'value_norm' is not an option of adakv"),
            std::string::npos);
  // the expected_attention scorer's options reach it through a wrapper
  EXPECT_NO_THROW(make_method_from_yaml("{cache: adakv, scorer: expected_attention, score_epsilon: 0.01}"));
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: pyramidkv, kernel: 4}"); }).find("odd kernel"), std::string::npos);
}

TEST(ScoredEvictionMethods, KeyRerotationMovesKeptKeysToContiguousPositions) {
  auto model = stories();
  const auto& cfg = model->config();
  const auto ids = stories260k_sampled_ids(3, 80);
  PromptSpan span;
  span.context_begin = 1;
  span.context_end = 70;  // 69 context tokens, 10 question tokens
  // ratio 0.5: f = (40 - 11) / 69 -> 29 context tokens per head; 1 + 29 kept before the question.
  const int64_t kept = 1 + 29;
  // The pre-RoPE keys of the whole prompt, recorded from a plain prefill.
  struct PreRopeKeys : LayerObserver {
    std::vector<std::vector<torch::Tensor>> k;
    explicit PreRopeKeys(int layers) : k(static_cast<size_t>(layers)) {}
    void on_qkv(int layer, const torch::Tensor&, const torch::Tensor& k_pre, const torch::Tensor&, const torch::Tensor&) override {
      k[layer].push_back(k_pre[0]);
    }
  } pre(cfg.num_hidden_layers);
  {
    auto full = make_full_cache(*model, 80);
    ForwardOptions fo;
    fo.observer = &pre;
    model->forward(torch::tensor(ids).view({1, 80}), *full, fo);
  }
  auto plain = prepared_method(*model, "{cache: knorm, ratio: 0.5}");
  auto moved = prepared_method(*model, "{cache: key_rerotation, ratio: 0.5, scorer: knorm}");
  auto a = plain->prefill(*model, ids, span, 90, 16), b = moved->prefill(*model, ids, span, 90, 16);
  EXPECT_EQ(b.cache->next_position(), kept + 10);  // the question followed the kept tokens
  EXPECT_EQ(a.cache->next_position(), 80);
  EXPECT_EQ(b.cache->bytes(), a.cache->bytes());
  EXPECT_EQ(b.cache->full_bytes(), a.cache->full_bytes());  // the full cache would hold all 80
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    auto k_pre = torch::cat(pre.k[l], 1);  // [Hkv, 80, D]
    std::vector<torch::Tensor> old_positions(static_cast<size_t>(cfg.num_key_value_heads));
    a.cache->for_each_block(l, [&](const KVBlock& blk) { old_positions[blk.head] = blk.positions.clone(); });
    b.cache->for_each_block(l, [&](const KVBlock& blk) {
      ASSERT_EQ(blk.positions.size(0), kept + 10);
      EXPECT_TRUE(torch::equal(blk.positions, torch::arange(kept + 10, torch::kInt64)));
      // the same tokens as knorm kept, each key rotated as if it stood at its new position
      for (int64_t i = 0; i < kept; ++i) {
        const int64_t original = old_positions[blk.head][i].item<int64_t>();
        auto expected = model->rope()->apply(k_pre[blk.head][original].view({1, 1, 1, -1}), torch::full({1}, i, torch::kInt64));
        // float32 angles (position x frequency, rounded per factor) up to 80 rad: ~1e-5 rad apart between
        // RoPE(new - old) RoPE(old) and RoPE(new), times the key's size
        const double size = std::max(1.0, expected.abs().max().item<double>());
        EXPECT_LE((blk.k[0][0][i] - expected.view({-1})).abs().max().item<double>(), 5e-5 * size) << l << " " << blk.head << " " << i;
      }
    });
  }
  // Heads that keep different numbers of tokens (AdaKV's budgets) have no common numbering.
  EXPECT_NE(error_of([&] {
              auto one = make_full_cache(*model, 8);
              prefill(*model, *one, std::vector<int64_t>(ids.begin(), ids.begin() + 8), 8);
              std::vector<torch::Tensor> masks;
              for (int l = 0; l < cfg.num_hidden_layers; ++l) {
                auto m = torch::ones({cfg.num_key_value_heads, 8}, torch::kBool);
                m[0][3] = false;  // head 0 keeps one token fewer
                masks.push_back(m);
              }
              CompactedCache(*one, model->rope(), 0, masks).renumber_contiguous();
            }).find("same number of tokens"),
            std::string::npos);
}
