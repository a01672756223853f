// KIVI: the group quantizer against a plain float loop, code packing by hand, and the cache's
// policy on stories260K (which tokens are quantized how, recomputed from the keys and values
// the run itself produced), its bytes counted by hand, and full precision inside a forward.
#include <gtest/gtest.h>

#include <cmath>

#include "compress/kivi_cache.h"
#include "compress/kivi_compacted_cache.h"
#include "methods/method_test_util.h"
#include "model/model_test_util.h"
#include "model/session.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

// Plain-loop asymmetric quantization of one group: codes and dequantized values.
void quantize_plain(const std::vector<float>& x, int bits, std::vector<int>& codes, std::vector<float>& back) {
  float lo = x[0], hi = x[0];
  for (float v : x) lo = std::min(lo, v), hi = std::max(hi, v);
  const float levels = float((1 << bits) - 1), scale = (hi - lo) / levels;
  codes.assign(x.size(), 0);
  back.assign(x.size(), lo);
  for (size_t i = 0; i < x.size(); ++i) {
    if (scale > 0) codes[i] = int(std::min(levels, std::max(0.0f, std::nearbyint((x[i] - lo) / scale))));
    back[i] = float(codes[i]) * scale + lo;
  }
}

// Records the keys (with RoPE) and values each forward hands to the cache.
struct Recorder : LayerObserver {
  const Rope& rope;
  std::vector<std::vector<torch::Tensor>> k, v;
  Recorder(const Rope& r, int layers) : rope(r), k(size_t(layers)), v(size_t(layers)) {}
  void on_qkv(int l, const torch::Tensor&, const torch::Tensor& k_pre, const torch::Tensor& vv, const torch::Tensor& p) override {
    k[l].push_back(rope.apply(k_pre, p)[0]);  // [Hkv, T, D]
    v[l].push_back(vv[0]);
  }
};

}  // namespace

TEST(KiviQuantizer, GroupsMatchAPlainLoopAndStayWithinHalfAStep) {
  torch::manual_seed(3);
  auto x = torch::randn({3, 64});
  x[2].narrow(0, 16, 16).fill_(0.25f);  // a constant group: scale 0, exact
  for (int bits : {2, 4, 8}) {
    const auto q = quantize_groups(x, bits, 16);
    ASSERT_EQ(q.scale.sizes(), (std::vector<int64_t>{3, 4}));
    const auto back = dequantize_groups(q.codes, q.scale, q.min, 16);
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t g = 0; g < 4; ++g) {
        std::vector<float> group(16);
        for (int64_t i = 0; i < 16; ++i) group[i] = x[r][g * 16 + i].item<float>();
        std::vector<int> codes;
        std::vector<float> expected;
        quantize_plain(group, bits, codes, expected);
        const float step = q.scale[r][g].item<float>();
        for (int64_t i = 0; i < 16; ++i) {
          EXPECT_EQ(q.codes[r][g * 16 + i].item<int>(), codes[i]) << bits << " " << r << " " << g << " " << i;
          EXPECT_NEAR(back[r][g * 16 + i].item<float>(), expected[i], 1e-6);
          EXPECT_LE(std::abs(back[r][g * 16 + i].item<float>() - group[i]), step / 2 + 1e-6);
        }
      }
    EXPECT_TRUE(torch::equal(back[2].narrow(0, 16, 16), x[2].narrow(0, 16, 16)));
  }
  EXPECT_THROW(quantize_groups(x, 3, 16), Error);
  EXPECT_THROW(quantize_groups(x, 2, 24), Error);  // 64 does not split into 24s
}

TEST(KiviQuantizer, CodesPackLowBitsFirst) {
  auto two = torch::tensor({1, 2, 3, 0, 3, 3, 3, 3}, torch::kUInt8);
  const auto p2 = pack_codes(two, 2);
  ASSERT_EQ(p2.numel(), 2);
  EXPECT_EQ(p2[0].item<int>(), 1 + 2 * 4 + 3 * 16);  // 57
  EXPECT_EQ(p2[1].item<int>(), 255);
  const auto p4 = pack_codes(torch::tensor({5, 10}, torch::kUInt8), 4);
  EXPECT_EQ(p4[0].item<int>(), 5 + 10 * 16);
  auto codes = torch::randint(0, 4, {3, 5, 16}).to(torch::kUInt8);
  EXPECT_TRUE(torch::equal(unpack_codes(pack_codes(codes, 2), 2), codes));
  codes = torch::randint(0, 16, {2, 8}).to(torch::kUInt8);
  EXPECT_TRUE(torch::equal(unpack_codes(pack_codes(codes, 4), 4), codes));
  EXPECT_THROW(pack_codes(torch::zeros({6}, torch::kUInt8), 2), Error);  // 6 codes are not whole bytes
}

TEST(KiviCache, StoresWhatThePolicySaysAndCountsItsBytes) {
  auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
  const auto& cfg = model->config();
  const int64_t n = 300, R = 128, G = 32, D = cfg.head_dim, H = cfg.num_key_value_heads;  // D 8: value groups of 8
  auto ids = stories260k_sampled_ids(2, 256);  // 300 tokens: two of the fixture's sampled rows
  for (int64_t id : stories260k_sampled_ids(3, n - 256)) ids.push_back(id);
  KiviCache cache(cfg, model->rope(), 1, KiviOptions{2, G, R}, torch::kCPU, torch::kFloat32);
  Recorder rec(*model->rope(), cfg.num_hidden_layers);
  ForwardOptions fo;
  fo.observer = &rec;
  for (int64_t s = 0; s < n; s += 64) {
    const int64_t len = std::min<int64_t>(64, n - s);
    model->forward(torch::tensor(std::vector<int64_t>(ids.begin() + s, ids.begin() + s + len)).view({1, len}), cache, fo);
  }
  // keys: 2 full blocks of 128 quantized, a tail of 44; values: all but the last 128 quantized.
  EXPECT_EQ(cache.quantized_keys(), 256);
  EXPECT_EQ(cache.quantized_values(), 172);
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    auto K = torch::cat(rec.k[l], 1), V = torch::cat(rec.v[l], 1);  // [H, n, D] as handed to the cache
    std::vector<torch::Tensor> ks, vs;
    int64_t next = 0;
    cache.for_each_block(l, [&](const KVBlock& b) {
      EXPECT_EQ(b.min_position, next);
      next = b.max_position + 1;
      ks.push_back(b.k[0]);
      vs.push_back(b.v[0]);
    });
    EXPECT_EQ(next, n);
    auto k = torch::cat(ks, 1), v = torch::cat(vs, 1);
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t c = 0; c < D; ++c)
        for (int64_t g0 = 0; g0 < 256; g0 += G) {  // per channel, 32 tokens a group
          std::vector<float> group(G);
          for (int64_t t = 0; t < G; ++t) group[t] = K[h][g0 + t][c].item<float>();
          std::vector<int> codes;
          std::vector<float> back;
          quantize_plain(group, 2, codes, back);
          for (int64_t t = 0; t < G; ++t) ASSERT_NEAR(k[h][g0 + t][c].item<float>(), back[t], 1e-5) << l << " " << h;
        }
      EXPECT_TRUE(torch::equal(k[h].narrow(0, 256, 44), K[h].narrow(0, 256, 44)));  // the key tail, exact
      for (int64_t t = 0; t < 172; ++t) {  // per token, one group of all 8 channels
        std::vector<float> row(D);
        for (int64_t c = 0; c < D; ++c) row[c] = V[h][t][c].item<float>();
        std::vector<int> codes;
        std::vector<float> back;
        quantize_plain(row, 2, codes, back);
        for (int64_t c = 0; c < D; ++c) ASSERT_NEAR(v[h][t][c].item<float>(), back[c], 1e-5) << l << " " << h << " " << t;
      }
      EXPECT_TRUE(torch::equal(v[h].narrow(0, 172, 128), V[h].narrow(0, 172, 128)));  // the value window, exact
    }
  }
  // Bytes per layer, float32 scales and minima: key blocks 2 x (4 heads x 8 channels x 128 codes / 4 = 1024
  // + 2 x 4 x 8 x 4 groups x 4 B = 1024); key tail 44 x 4 x 8 x 4 B = 5632; quantized values 172 x 4 x
  // (8 codes / 4 = 2 + 2 x 1 group x 4 B = 8) = 6880; value window 128 x 4 x 8 x 4 B = 16384.
  const int64_t per_layer = 2 * (1024 + 1024) + 5632 + 6880 + 16384;
  EXPECT_EQ(cache.bytes(), per_layer * cfg.num_hidden_layers);
  EXPECT_EQ(cache.full_bytes(), n * cfg.num_hidden_layers * H * D * 2 * 4);
  // 84 decode steps close the third key block exactly; one more opens a new tail.
  for (int64_t t = 0; t < 84; ++t) model->forward(torch::tensor({ids[t]}).view({1, 1}), cache);
  EXPECT_EQ(cache.quantized_keys(), 384);
  EXPECT_EQ(cache.quantized_values(), 256);
  model->forward(torch::tensor({ids[0]}).view({1, 1}), cache);
  EXPECT_EQ(cache.quantized_keys(), 384);
  EXPECT_EQ(cache.quantized_values(), 257);
  cache.reset();
  EXPECT_EQ(cache.next_position(), 0);
  EXPECT_EQ(cache.bytes(), 0);
}

TEST(KiviCache, AForwardAttendsToItsOwnTokensInFullPrecision) {
  auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
  const auto ids = stories260k_sampled_ids(3, 200);
  KiviCache cache(model->config(), model->rope(), 1, KiviOptions{2, 32, 32}, torch::kCPU, torch::kFloat32);
  // one forward of 200 tokens on an empty cache: KIVI's prefill attends to unquantized states
  EXPECT_LE(max_abs_diff(sequence_logits(*model, ids, 200), sequence_logits(*model, ids, 200, cache)), 1e-5);
  EXPECT_GT(cache.quantized_keys(), 0);  // and stored them quantized when the forward committed
  // later forwards see the quantized past: 4 bits is closer to the full cache than 2 bits
  auto error_at = [&](int bits) {
    KiviCache c(model->config(), model->rope(), 1, KiviOptions{bits, 32, 32}, torch::kCPU, torch::kFloat32);
    return max_abs_diff(sequence_logits(*model, ids, 16), sequence_logits(*model, ids, 16, c));
  };
  const double two = error_at(2), four = error_at(4), eight = error_at(8);
  EXPECT_GT(two, four);
  EXPECT_GT(four, eight);
  EXPECT_GT(two, 1e-3);  // the quantization is real
}

TEST(KiviCache, OptionErrorsAreClear) {
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: kivi, bits: 3}"); }).find("bits must be 2 or 4"), std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: kivi, group_size: 32, residual: 48}"); }).find("residual"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: kivi, ratio: 0.5}"); }).find("'ratio' is not an option of kivi"),
            std::string::npos);
}

TEST(KiviCompactedCache, EachKeptHeadIsQuantizedUnderKivisPolicyAtItsOwnPositions) {
  auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
  const auto& cfg = model->config();
  const int64_t n = 200, R = 32, D = cfg.head_dim, H = cfg.num_key_value_heads;
  const auto ids = stories260k_sampled_ids(1, n);
  FullCache full(cfg, model->rope(), 1, n, torch::kCPU, torch::kFloat32);
  for (int64_t s = 0; s < n; s += 50) model->forward(torch::tensor(std::vector<int64_t>(ids.begin() + s, ids.begin() + s + 50)).view({1, 50}), full);
  // head h keeps every (h + 2)-th token: different counts and positions per head
  std::vector<torch::Tensor> keep;
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    auto m = torch::zeros({H, n}, torch::kBool);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < n; t += h + 2) m[h][t] = true;
    keep.push_back(m);
  }
  CompactedCache kept(full, model->rope(), 0, keep);
  KiviCompactedCache cache(kept, cfg, model->rope(), KiviOptions{2, 32, R});
  int64_t expected_bytes = 0;
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    std::vector<std::vector<torch::Tensor>> ks(H), vs(H), ps(H);
    cache.for_each_block(l, [&](const KVBlock& b) {
      ASSERT_GE(b.head, 0);
      EXPECT_EQ(b.kv_heads, H);
      EXPECT_EQ(b.min_position, b.positions[0].item<int64_t>());
      EXPECT_EQ(b.max_position, b.positions[-1].item<int64_t>());
      ks[b.head].push_back(b.k[0][0]);
      vs[b.head].push_back(b.v[0][0]);
      ps[b.head].push_back(b.positions);
    });
    for (int64_t h = 0; h < H; ++h) {
      auto K = kept.head_keys(l, h)[0], V = kept.head_values(l, h)[0];  // [m, D], with RoPE
      const int64_t m = K.size(0), blocks = m / R, vq = std::max<int64_t>(0, m - R);
      auto k = torch::cat(ks[h]), v = torch::cat(vs[h]), p = torch::cat(ps[h]);
      ASSERT_EQ(k.size(0), m);
      EXPECT_TRUE(torch::equal(p, kept.head_positions(l, h)));
      for (int64_t c = 0; c < D; ++c)
        for (int64_t t0 = 0; t0 < blocks * R; t0 += 32) {  // keys per channel, groups of 32 kept tokens
          std::vector<float> group(32);
          for (int64_t t = 0; t < 32; ++t) group[t] = K[t0 + t][c].item<float>();
          std::vector<int> codes;
          std::vector<float> back;
          quantize_plain(group, 2, codes, back);
          for (int64_t t = 0; t < 32; ++t) ASSERT_NEAR(k[t0 + t][c].item<float>(), back[t], 1e-5) << l << " " << h;
        }
      EXPECT_TRUE(torch::equal(k.narrow(0, blocks * R, m - blocks * R), K.narrow(0, blocks * R, m - blocks * R)));
      for (int64_t t = 0; t < vq; ++t) {  // values per token once older than the head's last 32 kept
        std::vector<float> row(D);
        for (int64_t c = 0; c < D; ++c) row[c] = V[t][c].item<float>();
        std::vector<int> codes;
        std::vector<float> back;
        quantize_plain(row, 2, codes, back);
        for (int64_t c = 0; c < D; ++c) ASSERT_NEAR(v[t][c].item<float>(), back[c], 1e-5);
      }
      EXPECT_TRUE(torch::equal(v.narrow(0, vq, m - vq), V.narrow(0, vq, m - vq)));
      // bytes (float32 scales / minima): a key block is 8 channels x (32 codes / 4 + 2 x 4 B) = 128 B,
      // the key tail 4 D B a token, a quantized value 8 / 4 + 2 x 4 = 10 B, the value window 4 D B a token
      expected_bytes += blocks * 128 + (m - blocks * R) * 4 * D + vq * 10 + (m - vq) * 4 * D;
    }
  }
  EXPECT_EQ(cache.bytes(), expected_bytes);
  EXPECT_EQ(cache.full_bytes(), kept.full_bytes());
  // a decode token joins every head in full precision, at the next position
  const auto before = cache.bytes();
  model->forward(torch::tensor({ids[0]}).view({1, 1}), cache);
  EXPECT_EQ(cache.next_position(), n + 1);
  EXPECT_GT(cache.bytes(), before);
  EXPECT_EQ(cache.full_bytes(), (n + 1) * cfg.num_hidden_layers * H * D * 2 * 4);
}

TEST(KiviEviction, NeedsAnEvictionEntryThatKeepsACompactedCache) {
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: kivi_eviction, bits: 2}"); }).find("needs 'eviction'"), std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: kivi_eviction, eviction: {cache: snapkv, ratoi: 0.5}}"); })
                .find("'ratoi' is not an option of snapkv"),
            std::string::npos);
  auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
  auto method = make_method_from_yaml("{cache: kivi_eviction, eviction: {cache: full}}");
  MethodContext context;
  context.model = model.get();
  method->prepare(context);
  const auto ids = stories260k_sampled_ids(0, 40);
  EXPECT_NE(error_of([&] { method->prefill(*model, ids, PromptSpan{}, 64, 64); }).find("does not keep a compacted per-head cache"),
            std::string::npos);
}
