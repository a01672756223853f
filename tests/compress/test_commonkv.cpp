// CommonKV: the shared bases against the stacked weights (exact at full rank, the truncated
// SVD of the stack at rank r, recomputed here in float64), the merge recomputed by hand (which
// tokens merge, their mean latents), bytes counted by hand, attention through the cache equal
// to attention over the rebuilt states, and the model's forward handing the cache its input.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "cache/full_cache.h"
#include "compress/commonkv.h"
#include "model/attention.h"
#include "model/random_model.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

ModelConfig config4() {
  ModelConfig c;
  c.vocab_size = 64;
  c.hidden_size = 24;
  c.intermediate_size = 32;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;  // Hkv D = 8: two layers stack to 16 rows < 24
  c.max_position_embeddings = 256;
  return c;
}

// Rows of layer `l` (in its group of G from `first`) of the rank-r SVD approximation of the
// stacked projections, float64 [Hkv D, H].
torch::Tensor truncated_rows(const LlamaModel& model, bool keys, int64_t first, int64_t G, int64_t l, int64_t r) {
  std::vector<torch::Tensor> rows;
  for (int64_t i = first; i < first + G; ++i)
    rows.push_back((keys ? model.layer(int(i)).k_proj : model.layer(int(i)).v_proj).to(torch::kFloat64));
  auto svd = torch::linalg_svd(torch::cat(rows, 0), false);
  auto u = std::get<0>(svd).slice(1, 0, r), s = std::get<1>(svd).slice(0, 0, r), vh = std::get<2>(svd).slice(0, 0, r);
  auto approx = torch::matmul(u * s, vh);
  const int64_t w = model.config().num_key_value_heads * model.config().head_dim;
  return approx.slice(0, (l - first) * w, (l - first + 1) * w);
}

// Feeds n random inputs to every layer of the cache (one forward's worth), returns them.
std::vector<torch::Tensor> feed(CommonKVCache& cache, const ModelConfig& c, int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> xs;
  auto base = torch::randn({1, n, c.hidden_size});
  auto pos = torch::arange(n, torch::kInt64);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    xs.push_back(base + 0.3 * torch::randn({1, n, c.hidden_size}));  // a slowly changing residual stream
    cache.set_layer_input(l, xs.back());
    cache.append(l, torch::zeros({1, c.num_key_value_heads, n, c.head_dim}), torch::zeros({1, c.num_key_value_heads, n, c.head_dim}), pos);
  }
  cache.advance(n);
  return xs;
}

// [1, n, Hkv D] -> [1, Hkv, n, D]
torch::Tensor heads(const torch::Tensor& flat, const ModelConfig& c) {
  return flat.view({1, flat.size(1), c.num_key_value_heads, c.head_dim}).transpose(1, 2);
}

}  // namespace

TEST(CommonKVBases, FullRankIsExactAndRankRIsTheStackedTruncatedSvd) {
  const auto c = config4();
  auto model = make_random_model(c, 3);
  auto bases = CommonKVBases::from_model(*model, 2);
  EXPECT_EQ(bases->max_rank, 16);
  EXPECT_EQ(bases->merged_groups, 2);
  for (int l = 0; l < 4; ++l) {
    const int64_t g = l / 2;
    auto wk = torch::matmul(bases->down_k[g], bases->up_k[l].transpose(0, 1)).transpose(0, 1);  // [Hkv D, H]
    EXPECT_LE(max_abs_diff(wk, model->layer(l).k_proj), 1e-5) << "layer " << l;
    auto wv = torch::matmul(bases->down_v[g], bases->up_v[l].transpose(0, 1)).transpose(0, 1);
    EXPECT_LE(max_abs_diff(wv, model->layer(l).v_proj), 1e-5) << "layer " << l;
  }
  CommonKVLayout layout;
  layout.rank = 5;
  CommonKVCache cache(c, model->rope(), bases, layout, torch::kCPU, torch::kFloat32);
  const auto xs = feed(cache, c, 6, 1);
  for (int l = 0; l < 4; ++l) {
    const auto [k, v] = cache.rebuilt(l);
    auto want_k = heads(torch::matmul(xs[l].to(torch::kFloat64), truncated_rows(*model, true, l / 2 * 2, 2, l, 5).transpose(0, 1)), c);
    auto want_v = heads(torch::matmul(xs[l].to(torch::kFloat64), truncated_rows(*model, false, l / 2 * 2, 2, l, 5).transpose(0, 1)), c);
    EXPECT_LE(max_abs_diff(k.to(torch::kFloat64), want_k), 1e-4) << "layer " << l;
    EXPECT_LE(max_abs_diff(v.to(torch::kFloat64), want_v), 1e-4) << "layer " << l;
  }
  // 4 layers x 6 tokens x (K + V) latents of 5 floats
  EXPECT_EQ(cache.bytes(), 4 * 6 * 2 * 5 * 4);
  EXPECT_EQ(cache.full_bytes(), 4 * 6 * 2 * 8 * 4);
}

TEST(CommonKVCache, MergesTheMostSimilarTokensOfEachGroupIntoTheirMeanByHand) {
  const auto c = config4();
  auto model = make_random_model(c, 4);
  auto bases = CommonKVBases::from_model(*model, 2);
  CommonKVLayout layout;
  layout.rank = 6;
  layout.sink = 2;
  layout.recent = 3;
  layout.unmerged = 0.25;
  const int64_t n = 17;
  layout.merge_tokens = n;
  CommonKVCache cache(c, model->rope(), bases, layout, torch::kCPU, torch::kFloat32);
  const auto xs = feed(cache, c, n, 2);
  cache.merge_prompt();
  // by hand: latents, similarity of each group's first and last layer over tokens 2 .. 13,
  // the 0.25 x 24 = 6 least similar over both groups stay per layer
  std::vector<torch::Tensor> zk(4), zv(4);
  for (int l = 0; l < 4; ++l) {
    zk[l] = torch::matmul(xs[l], bases->down_k[l / 2].narrow(1, 0, 6))[0];  // [n, r]
    zv[l] = torch::matmul(xs[l], bases->down_v[l / 2].narrow(1, 0, 6))[0];
  }
  std::vector<std::pair<double, int64_t>> sims;  // (similarity, group * 12 + token - 2)
  for (int g = 0; g < 2; ++g)
    for (int64_t j = 2; j < 14; ++j) {
      auto a = zk[2 * g][j].to(torch::kFloat64), b = zk[2 * g + 1][j].to(torch::kFloat64);
      sims.push_back({(a.dot(b) / (a.norm() * b.norm())).item<double>(), g * 12 + (j - 2)});
    }
  std::stable_sort(sims.begin(), sims.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<bool> stays(24, false);
  for (int i = 0; i < 6; ++i) stays[static_cast<size_t>(sims[i].second)] = true;
  int64_t merged_total = 0;
  for (int l = 0; l < 4; ++l) {
    const int g = l / 2;
    const auto [k_pre, v] = cache.rebuilt(l);
    for (int64_t j = 0; j < n; ++j) {
      const bool merged = j >= 2 && j < 14 && !stays[static_cast<size_t>(g * 12 + (j - 2))];
      if (l % 2 == 0 && merged) ++merged_total;
      auto z_k = merged ? (zk[2 * g][j] + zk[2 * g + 1][j]) / 2 : zk[l][j];
      auto z_v = merged ? (zv[2 * g][j] + zv[2 * g + 1][j]) / 2 : zv[l][j];
      auto want_k = torch::matmul(bases->up_k[l].narrow(1, 0, 6), z_k).view({2, 4});
      auto want_v = torch::matmul(bases->up_v[l].narrow(1, 0, 6), z_v).view({2, 4});
      EXPECT_LE(max_abs_diff(k_pre[0].select(1, j), want_k), 1e-5) << "layer " << l << " token " << j;
      EXPECT_LE(max_abs_diff(v[0].select(1, j), want_v), 1e-5) << "layer " << l << " token " << j;
    }
  }
  EXPECT_EQ(merged_total, 18);
  const auto counts = commonkv_counts(n, 2, layout);
  EXPECT_EQ(counts.protected_tokens, 5);
  EXPECT_EQ(counts.unmerged, 6);
  EXPECT_EQ(counts.merged, 18);
  // latent tokens: 4 layers x 5 protected + 2 layers x 6 unmerged + 18 merged once
  EXPECT_EQ(cache.bytes(), (4 * 5 + 2 * 6 + 18) * 2 * 6 * 4);
}

TEST(CommonKVCache, AttentionEqualsAttentionOverTheRebuiltStates) {
  const auto c = config4();
  auto model = make_random_model(c, 5);
  auto bases = CommonKVBases::from_model(*model, 2);
  CommonKVLayout layout;
  layout.rank = 7;
  layout.sink = 1;
  layout.recent = 2;
  layout.merge_tokens = 12;
  layout.chunk_tokens = 3;
  CommonKVCache cache(c, model->rope(), bases, layout, torch::kCPU, torch::kFloat32);
  feed(cache, c, 12, 6);
  cache.merge_prompt();
  // one more token per layer, stored per layer after the merge
  auto pos = torch::tensor({12}, torch::kInt64);
  for (int l = 0; l < 4; ++l) {
    cache.set_layer_input(l, torch::randn({1, 1, c.hidden_size}));
    cache.append(l, torch::zeros({1, 2, 1, 4}), torch::zeros({1, 2, 1, 4}), pos);
  }
  cache.advance(1);
  QueryPositions qpos{pos, 12, 12};
  AttentionOptions opt;
  opt.scale = 0.5;
  for (int l = 0; l < 4; ++l) {
    auto q = torch::randn({1, 4, 1, 4});
    const auto got = attend(q, qpos, cache, l, opt);
    auto [k_pre, v] = cache.rebuilt(l);
    auto all = torch::arange(13, torch::kInt64);
    auto k = model->rope()->apply(k_pre, all);
    const auto want = attend_blocks(q, qpos, [&](const std::function<void(const KVBlock&)>& visit) {
      KVBlock b;
      b.k = k;
      b.v = v;
      b.positions = all;
      b.min_position = 0;
      b.max_position = 12;
      visit(b);
    }, opt);
    EXPECT_LE(max_abs_diff(got, want), 1e-5) << "layer " << l;
  }
}

TEST(CommonKVCache, TheModelHandsItTheLayerInputAndFullRankReproducesTheFullCache) {
  auto c = config4();
  auto model = make_random_model(c, 8);
  auto bases = CommonKVBases::from_model(*model, 1);  // one layer per group: rank Hkv D is exact
  CommonKVLayout layout;
  layout.rank = bases->max_rank;
  CommonKVCache cache(c, model->rope(), bases, layout, torch::kCPU, torch::kFloat32);
  FullCache full(c, model->rope(), 1, 16, torch::kCPU, torch::kFloat32);
  auto ids = torch::tensor({{1, 5, 9, 13, 17, 21, 25, 29}}, torch::kInt64);
  const auto a = model->forward(ids, cache);
  const auto b = model->forward(ids, full);
  EXPECT_LE(max_abs_diff(a, b), 1e-4);
  CommonKVCache bad(c, model->rope(), bases, layout, torch::kCPU, torch::kFloat32);
  EXPECT_THROW(bad.append(0, torch::zeros({1, 2, 1, 4}), torch::zeros({1, 2, 1, 4}), torch::tensor({0}, torch::kInt64)), Error);
}
