// MiniCache: the SLERP merge against a float64 plain loop, the retained tokens (the most
// distant per head) and the restored states recomputed by hand, bytes counted by hand, and
// attention through the cache equal to attention over the restored states.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "compress/minicache.h"
#include "methods/registry.h"
#include "model/attention.h"
#include "model/random_model.h"
#include "model/rope.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

// Plain-loop SLERP of two vectors (float64): unit direction, norms, angle.
void slerp_plain(const std::vector<double>& a, const std::vector<double>& b, double t, std::vector<double>& e,
                 double& na, double& nb, double& w) {
  na = nb = 0;
  double dot = 0;
  for (size_t i = 0; i < a.size(); ++i) na += a[i] * a[i], nb += b[i] * b[i], dot += a[i] * b[i];
  na = std::sqrt(na), nb = std::sqrt(nb);
  w = std::acos(std::max(-1.0, std::min(1.0, dot / (na * nb))));
  e.assign(a.size(), 0);
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::sin(w) < 1e-9) {
      e[i] = (1 - t) * a[i] / na + t * b[i] / nb;
    } else {
      e[i] = std::sin((1 - t) * w) / std::sin(w) * a[i] / na + std::sin(t * w) / std::sin(w) * b[i] / nb;
    }
  }
}

std::vector<double> row(const torch::Tensor& x) {
  auto c = x.to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

ModelConfig small_config(int layers) {
  ModelConfig c;
  c.hidden_size = 32;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 256;
  return c;
}

struct Filled {
  ModelConfig config;
  std::shared_ptr<Rope> rope;
  std::unique_ptr<FullCache> full;
  std::vector<torch::Tensor> k_pre, v;  // per layer [1, Hkv, n, D]
};

// A full cache holding n random tokens; layer l's states are layer (l-1)'s plus noise, so the
// pairs are similar but not equal (MiniCache's premise).
Filled filled(int layers, int64_t n, uint64_t seed) {
  Filled f;
  f.config = small_config(layers);
  f.rope = std::make_shared<Rope>(f.config, torch::kCPU);
  f.full = std::make_unique<FullCache>(f.config, f.rope, 1, n, torch::kCPU, torch::kFloat32);
  torch::manual_seed(seed);
  auto pos = torch::arange(n, torch::kInt64);
  auto k = torch::randn({1, 2, n, 8}), v = torch::randn({1, 2, n, 8});
  for (int l = 0; l < layers; ++l) {
    if (l > 0) k = k + 0.4 * torch::randn_like(k), v = v + 0.4 * torch::randn_like(v);
    f.k_pre.push_back(k.clone());
    f.v.push_back(v.clone());
    f.full->append(l, k, v, pos);
  }
  f.full->advance(n);
  return f;
}

}  // namespace

TEST(MiniCacheSlerp, MatchesAFloat64PlainLoop) {
  torch::manual_seed(5);
  auto a = torch::randn({2, 3, 7, 8}), b = torch::randn({2, 3, 7, 8});
  b[1][2][4] = a[1][2][4] * 3.0;  // parallel: the linear fallback, direction = a's
  for (double t : {0.0, 0.6, 1.0}) {
    const auto m = slerp_merge(a, b, t);
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t h = 0; h < 3; ++h)
        for (int64_t j = 0; j < 7; ++j) {
          std::vector<double> e;
          double na, nb, w;
          slerp_plain(row(a[i][h][j]), row(b[i][h][j]), t, e, na, nb, w);
          EXPECT_NEAR(m.norm_a[i][h][j].item<double>(), na, 1e-5);
          EXPECT_NEAR(m.norm_b[i][h][j].item<double>(), nb, 1e-5);
          EXPECT_NEAR(m.angle[i][h][j].item<double>(), w, 2e-3);  // acos near 0 is ill-conditioned in float32
          const auto got = row(m.direction[i][h][j]);
          double len = 0;
          for (size_t d = 0; d < e.size(); ++d) {
            EXPECT_NEAR(got[d], e[d], 2e-5) << "t " << t << " at " << i << "," << h << "," << j;
            len += got[d] * got[d];
          }
          EXPECT_NEAR(len, 1.0, 1e-5);
        }
  }
  const auto m = slerp_merge(a, b, 0.6);
  EXPECT_TRUE(torch::allclose(m.direction[1][2][4], a[1][2][4] / a[1][2][4].norm(), 1e-5, 1e-6));
}

TEST(MiniCacheCache, RetainsTheMostDistantTokensAndRestoresTheRestByHand) {
  const int64_t n = 20, R = 3;
  auto f = filled(5, n, 7);  // pairs (1, 2), (3, 4); layer 0 whole
  MiniCacheLayout layout;
  layout.start_layer = 1;
  layout.merge_tokens = n;
  layout.retained = R;
  MiniCacheCache cache(f.config, *f.full, f.rope, layout, 8);
  EXPECT_EQ(cache.merged_pairs(), 2);
  auto pos = torch::arange(n, torch::kInt64);
  for (int a : {1, 3}) {
    const int b = a + 1;
    auto ka = f.rope->apply(f.k_pre[a], pos), kb = f.rope->apply(f.k_pre[b], pos);
    for (int64_t h = 0; h < 2; ++h) {
      // distance per token: keys' angle + values' angle, by hand; the R largest are kept
      std::vector<double> dist(n);
      std::vector<std::vector<double>> ek(n), ev(n);
      std::vector<double> nka(n), nkb(n), nva(n), nvb(n);
      for (int64_t j = 0; j < n; ++j) {
        double wk, wv;
        slerp_plain(row(ka[0][h][j]), row(kb[0][h][j]), 0.6, ek[j], nka[j], nkb[j], wk);
        slerp_plain(row(f.v[a][0][h][j]), row(f.v[b][0][h][j]), 0.6, ev[j], nva[j], nvb[j], wv);
        dist[j] = wk + wv;
      }
      std::vector<int64_t> order(n);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return dist[x] > dist[y]; });
      std::vector<bool> kept(n, false);
      for (int64_t i = 0; i < R; ++i) kept[order[i]] = true;
      for (int which = 0; which < 2; ++which) {
        const int layer = which == 0 ? a : b;
        const auto [rk, rv] = cache.restored(layer);
        auto k_orig = which == 0 ? ka : kb;
        for (int64_t j = 0; j < n; ++j) {
          const auto gk = row(rk[0][h][j]), gv = row(rv[0][h][j]);
          if (kept[j]) {
            EXPECT_TRUE(torch::equal(rk[0][h][j], k_orig[0][h][j])) << "layer " << layer << " head " << h << " token " << j;
            EXPECT_TRUE(torch::equal(rv[0][h][j], f.v[layer][0][h][j]));
            continue;
          }
          const double mk = which == 0 ? nka[j] : nkb[j], mv = which == 0 ? nva[j] : nvb[j];
          for (int64_t d = 0; d < 8; ++d) {
            EXPECT_NEAR(gk[d], mk * ek[j][d], 1e-4) << "layer " << layer << " head " << h << " token " << j;
            EXPECT_NEAR(gv[d], mv * ev[j][d], 1e-4);
          }
        }
      }
    }
  }
  // layer 0 is whole
  EXPECT_TRUE(torch::equal(cache.restored(0).first, f.rope->apply(f.k_pre[0], pos)));
  // bytes by hand (float32): per pair and head, (n - R) merged tokens store 2 directions of 8
  // and 4 magnitudes, R retained store 4 states of 8; layer 0 stores 2 x 8 per token and head.
  const int64_t per_pair = 2 * ((n - R) * (2 * 8 + 4) + R * 4 * 8);
  EXPECT_EQ(cache.bytes(), 4 * (2 * per_pair + 2 * n * 2 * 8));
  EXPECT_EQ(cache.full_bytes(), 4 * 5 * 2 * n * 2 * 8);
}

TEST(MiniCacheCache, AttentionEqualsAttentionOverTheRestoredStatesAndDecodesWhole) {
  const int64_t n = 24;
  auto f = filled(4, n, 9);
  MiniCacheLayout layout;
  layout.start_layer = 0;
  layout.merge_tokens = n;
  layout.retained = 5;
  MiniCacheCache cache(f.config, *f.full, f.rope, layout, 7);  // chunks of 7: several blocks per head
  // one decode token appended whole to every layer
  torch::manual_seed(11);
  auto pos = torch::tensor({n}, torch::kInt64);
  std::vector<torch::Tensor> new_k, new_v;
  for (int l = 0; l < 4; ++l) {
    new_k.push_back(torch::randn({1, 2, 1, 8}));
    new_v.push_back(torch::randn({1, 2, 1, 8}));
    cache.append(l, new_k.back(), new_v.back(), pos);
  }
  cache.advance(1);
  EXPECT_EQ(cache.next_position(), n + 1);
  QueryPositions qpos{pos, n, n};
  AttentionOptions opt;
  opt.scale = 1.0 / std::sqrt(8.0);
  for (int l = 0; l < 4; ++l) {
    auto q = torch::randn({1, 4, 1, 8});
    const auto got = attend(q, qpos, cache, l, opt);
    auto [rk, rv] = cache.restored(l);
    auto k = torch::cat({rk, f.rope->apply(new_k[l], pos)}, 2), v = torch::cat({rv, new_v[l]}, 2);
    auto all_pos = torch::arange(n + 1, torch::kInt64);
    const auto want = attend_blocks(q, qpos, [&](const std::function<void(const KVBlock&)>& visit) {
      KVBlock b;
      b.k = k;
      b.v = v;
      b.positions = all_pos;
      b.min_position = 0;
      b.max_position = n;
      visit(b);
    }, opt);
    EXPECT_LE(max_abs_diff(got, want), 1e-5) << "layer " << l;
  }
  // the decode token is stored whole: 2 x 8 per head and layer more than after the prompt
  const int64_t per_pair = 2 * ((n - 5) * (2 * 8 + 4) + 5 * 4 * 8);
  EXPECT_EQ(cache.bytes(), 4 * (2 * per_pair + 4 * 2 * 2 * 8));
  cache.reset();
  EXPECT_EQ(cache.next_position(), 0);
  EXPECT_EQ(cache.bytes(), 0);
}

TEST(MiniCacheCache, RejectsARangeBeyondTheCacheAndTooManyRetained) {
  auto f = filled(4, 10, 3);
  MiniCacheLayout layout;
  layout.merge_tokens = 11;
  EXPECT_THROW(MiniCacheCache(f.config, *f.full, f.rope, layout), Error);
  layout.merge_tokens = 10;
  layout.retained = 11;
  EXPECT_THROW(MiniCacheCache(f.config, *f.full, f.rope, layout), Error);
}

TEST(MiniCacheMethod, ARatioBelowWhatMergingGivesIsAnErrorNamingTheFloor) {
  auto model = make_random_model(small_config(4), 2);
  MethodContext context;
  context.model = model.get();
  // merging all 4 layers of head size 8 keeps (2 x 8 + 4) / (4 x 8) = 0.625 of the bytes
  auto low = make_method_from_yaml("{cache: minicache, ratio: 0.3}");
  EXPECT_NE(error_of([&] { low->prepare(context); }).find("0.625"), std::string::npos);
  auto ok = make_method_from_yaml("{cache: minicache, ratio: 0.7}");
  EXPECT_NO_THROW(ok->prepare(context));
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: minicache, ratio: 0.5, retain_fraction: 0.1}"); }).find("not both"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: minicache, interpolation: 1.5}"); }).find("interpolation"),
            std::string::npos);
}
