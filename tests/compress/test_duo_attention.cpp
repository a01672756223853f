// DuoAttention on the fly: the head score recomputed with plain float64 loops (mean pre-RoPE
// query and key, RoPE'd at every position of the pattern, the last query's softmax, the mean
// of its cumulative sum), the streaming heads picked by hand, and the bytes of the method
// counted by hand on stories260K.
#include <gtest/gtest.h>

#include <cmath>

#include "cache/cache_factory.h"
#include "compress/compacted_cache.h"
#include "compress/duo_attention.h"
#include "methods/method_test_util.h"
#include "model/generate.h"
#include "model/model_test_util.h"
#include "model/session.h"
#include "methods/registry.h"
#include "tokenizer/tokenizer.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

struct PreRope : LayerObserver {
  std::vector<std::vector<torch::Tensor>> q, k;
  explicit PreRope(int layers) : q(size_t(layers)), k(size_t(layers)) {}
  void on_qkv(int l, const torch::Tensor& qp, const torch::Tensor& kp, const torch::Tensor&, const torch::Tensor&) override {
    q[l].push_back(qp[0].to(torch::kFloat64));
    k[l].push_back(kp[0].to(torch::kFloat64));
  }
};

}  // namespace

TEST(DuoAttention, HeadScoresMatchAPlainLoop) {
  auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
  const auto& cfg = model->config();
  const int64_t L = 40, G = cfg.gqa_group(), D = cfg.head_dim;
  const std::vector<std::vector<int64_t>> samples = {stories260k_sampled_ids(1, 50), stories260k_sampled_ids(2, 30)};
  const auto scores = duo_attention_head_scores(*model, samples, L, 16);
  ASSERT_EQ(scores.sizes(), (std::vector<int64_t>{cfg.num_hidden_layers, cfg.num_key_value_heads}));
  std::vector<std::vector<double>> expected(size_t(cfg.num_hidden_layers), std::vector<double>(size_t(cfg.num_key_value_heads), 0.0));
  const double scale = model->attention_options().scale;
  for (const auto& ids : samples) {
    const int64_t n = int64_t(ids.size());
    PreRope rec(cfg.num_hidden_layers);
    auto cache = make_full_cache(*model, n);
    ForwardOptions fo;
    fo.observer = &rec;
    model->forward(torch::tensor(ids).view({1, n}), *cache, fo);  // one forward: the same states as chunks
    for (int l = 0; l < cfg.num_hidden_layers; ++l) {
      auto Q = torch::cat(rec.q[l], 1), K = torch::cat(rec.k[l], 1);  // [Hq, n, D], [Hkv, n, D]
      for (int64_t h = 0; h < cfg.num_key_value_heads; ++h) {
        double area = 0;
        for (int64_t g = 0; g < G; ++g) {
          // mean vectors, RoPE'd: the query at position L-1, the key at every position 0..L-1
          auto q_bar = Q[h * G + g].mean(0).to(torch::kFloat32), k_bar = K[h].mean(0).to(torch::kFloat32);
          auto q_last = model->rope()->apply(q_bar.view({1, 1, 1, D}), torch::full({1}, L - 1, torch::kInt64)).view({D});
          std::vector<double> logits(static_cast<size_t>(L));
          for (int64_t j = 0; j < L; ++j) {
            auto kj = model->rope()->apply(k_bar.view({1, 1, 1, D}), torch::full({1}, j, torch::kInt64)).view({D});
            double s = 0;
            for (int64_t d = 0; d < D; ++d) s += q_last[d].item<double>() * kj[d].item<double>();
            logits[size_t(j)] = s * scale;
          }
          const double mx = *std::max_element(logits.begin(), logits.end());
          double z = 0;
          for (double x : logits) z += std::exp(x - mx);
          double cum = 0, sum_cum = 0;
          for (double x : logits) {
            cum += std::exp(x - mx) / z;
            sum_cum += cum;
          }
          area += sum_cum / double(L) / double(G);
        }
        expected[size_t(l)][size_t(h)] += area / double(samples.size());
      }
    }
  }
  for (int l = 0; l < cfg.num_hidden_layers; ++l)
    for (int64_t h = 0; h < cfg.num_key_value_heads; ++h)
      EXPECT_NEAR(scores[l][h].item<double>(), expected[size_t(l)][size_t(h)], 1e-5) << l << " " << h;
  // an area lies in [1/L, 1]: all attention on the last key gives 1/L, on the first key 1
  EXPECT_GE(scores.min().item<double>(), 1.0 / double(L) - 1e-6);
  EXPECT_LE(scores.max().item<double>(), 1.0 + 1e-6);
}

TEST(DuoAttention, StreamingHeadsAreTheLowestScoresAndStoreSinkPlusRecent) {
  auto scores = torch::tensor({0.5f, 0.2f, 0.9f, 0.2f, 0.1f, 0.7f}).view({3, 2});
  const auto s = duo_streaming_heads(scores, 3);  // 0.1 (4), then the tied 0.2s (1, 3)
  EXPECT_TRUE(torch::equal(s.view({-1}), torch::tensor({false, true, false, true, true, false})));
  EXPECT_EQ(duo_streaming_heads(scores, 0).sum().item<int64_t>(), 0);
  EXPECT_EQ(duo_streaming_heads(scores, 9).sum().item<int64_t>(), 6);

  // The method on the testbed model (it ships a tokenizer for the calibration text): 8 layers x 3 KV heads.
  const std::string dir = source_dir() + "/data/models/echokv-testbed-8l";
  auto model = load_model_for_run(dir, "cpu", "float32", 1);
  auto tokenizer = load_tokenizer(dir);
  const auto& cfg = model->config();
  auto prepared = [&](const std::string& yaml) {
    auto method = make_method_from_yaml(yaml);
    MethodContext context;
    context.model = model.get();
    context.tokenizer = tokenizer.get();
    context.prefill_chunk = 64;
    method->prepare(context);
    return method;
  };
  const std::string calibration = "calibration: [" + source_dir() + "/README.md], calibration_tokens: 300";
  auto method = prepared("{cache: duo_attention, head_compression_ratio: 0.5, sink_tokens: 8, recent_tokens: 16, " +
                         calibration + "}");
  const auto ids = stories260k_sampled_ids(2, 120);
  PromptSpan span;
  span.context_begin = 1;
  span.context_end = 100;  // 99 context tokens, 20 question tokens
  auto p = method->prefill(*model, ids, span, 130, 32);
  auto* compact = dynamic_cast<CompactedCache*>(p.cache.get());
  ASSERT_NE(compact, nullptr);
  // 24 heads, round(12) stream: they keep positions 0..7 and 84..99 of the prompt (the prefix at 0
  // is inside the sinks) and the 20 question tokens: 8 + 16 + 20 = 44; the others all 120.
  int64_t streaming = 0;
  for (int l = 0; l < cfg.num_hidden_layers; ++l)
    for (int64_t h = 0; h < cfg.num_key_value_heads; ++h) {
      const int64_t len = compact->head_length(l, h);
      EXPECT_TRUE(len == 44 || len == 120) << len;
      streaming += len == 44;
    }
  EXPECT_EQ(streaming, 12);
  const int64_t pair_bytes = 2 * cfg.head_dim * 4;
  EXPECT_EQ(p.cache->bytes(), (12 * 44 + 12 * 120) * pair_bytes);
  // ratio 0.5: (1 - 0.5) x 120 x 24 / 76 dropped = 18.9 -> 19 streaming heads
  auto by_bytes = prepared("{cache: duo_attention, ratio: 0.5, sink_tokens: 8, recent_tokens: 16, " + calibration + "}");
  auto q = by_bytes->prefill(*model, ids, span, 130, 32);
  EXPECT_EQ(q.cache->bytes(), (19 * 44 + 5 * 120) * pair_bytes);
  EXPECT_NE(error_of([&] { make_method_from_yaml("{cache: duo_attention, ratio: 0.5}"); }).find("needs calibration"),
            std::string::npos);
}
