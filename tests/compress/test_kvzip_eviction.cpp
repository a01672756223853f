// KVzip eviction: pair-level keeps the pairs scoring strictly above the int(N * ratio)-th
// largest, globally (heads differ), as KVzip's _threshold;
// uniform keeps int(n * ratio) per head; the masked (retain-mode) cache at ratio 1 is the full
// cache, and a mask keeping sink + the last W context tokens decodes exactly like the
// StreamingLLM cache after a one-chunk prefill.
#include <algorithm>

#include <gtest/gtest.h>

#include "cache/cache_factory.h"
#include "compress/kvzip_eviction.h"
#include "compress/streaming_cache.h"
#include "io/safetensors.h"
#include "model/session.h"
#include "model/model_test_util.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

TEST(KvzipEviction, PairAndUniformBudgets) {
  torch::manual_seed(3);
  std::vector<torch::Tensor> scores = {torch::rand({2, 10}), torch::rand({2, 10}) * 0.1};
  auto pair = kvzip_keep_pairs(scores, 0.3, false);
  // int(40 * 0.3) = 12; the official rule keeps the scores above the 12th best: 11 distinct ones
  EXPECT_EQ(pair[0].sum().item<int64_t>() + pair[1].sum().item<int64_t>(), 11);
  // Plain loop: every kept score beats exactly 40 - 12 .. pairs; count the scores above the 12th.
  std::vector<float> flat;
  for (const auto& s : scores)
    for (int64_t i = 0; i < s.numel(); ++i) flat.push_back(s.reshape(-1)[i].item<float>());
  std::vector<float> sorted = flat;
  std::sort(sorted.rbegin(), sorted.rend());
  const float twelfth = sorted[11];
  for (int l = 0; l < 2; ++l)
    for (int64_t i = 0; i < scores[l].numel(); ++i)
      EXPECT_EQ(pair[l].reshape(-1)[i].item<bool>(), scores[l].reshape(-1)[i].item<float>() > twelfth);
  // Ties at the threshold are all dropped; ratio 1 keeps everything, ratio 0 nothing.
  std::vector<torch::Tensor> tied = {torch::tensor({{0.5f, 0.5f, 0.5f, 0.9f}})};
  EXPECT_EQ(kvzip_keep_pairs(tied, 0.5, false)[0].sum().item<int64_t>(), 1);  // above the 2nd best (0.5)
  EXPECT_EQ(kvzip_keep_pairs(tied, 1.0, false)[0].sum().item<int64_t>(), 4);
  EXPECT_EQ(kvzip_keep_pairs(tied, 0.0, false)[0].sum().item<int64_t>(), 0);
  auto uni = kvzip_keep_pairs(scores, 0.3, true);
  for (const auto& m : uni) EXPECT_TRUE(m.sum(1).eq(3).all().item<bool>());
  EXPECT_THROW(kvzip_keep_pairs(scores, 1.5, false), Error);
}

TEST(KvzipEviction, MaskedCacheMatchesFullAndStreaming) {
  auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
  const auto& cfg = model->config();
  const auto ids = stories260k_sampled_ids(3, 90);
  const int64_t S = 4, C = 60, W = 16;  // prefix 4, context 4..63, then 26 "question" tokens
  const std::vector<int64_t> head(ids.begin(), ids.begin() + S + C), tail(ids.begin() + S + C, ids.end());
  auto run = [&](KVCache& cache, const std::function<void()>& after_prefill) {
    model->forward(torch::tensor(head, torch::kInt64).unsqueeze(0), cache);
    after_prefill();
    std::vector<torch::Tensor> out;
    for (int64_t t : tail) out.push_back(model->forward(torch::tensor({t}, torch::kInt64).unsqueeze(0), cache)[0]);
    return torch::cat(out);
  };
  auto full = make_full_cache(*model, 128);
  const auto expected_full = run(*full, [] {});
  MaskedFullCache masked(make_full_cache(*model, 128));
  std::vector<torch::Tensor> all_keep(cfg.num_hidden_layers, torch::ones({cfg.num_key_value_heads, C}, torch::kBool));
  EXPECT_LE(max_abs_diff(expected_full, run(masked, [&] { masked.set_keep(S, all_keep); })), 1e-4);
  EXPECT_EQ(masked.bytes(), masked.full_bytes());

  StreamingCache streaming(cfg, model->rope(), 1, S, W, torch::kCPU, torch::kFloat32);
  // After the prefill both keep sink + the last W context tokens, so the first question token
  // sees the same pairs; later StreamingLLM slides its window while KVzip keeps every token
  // after the context, so only that first token is compared.
  MaskedFullCache masked2(make_full_cache(*model, 128));
  std::vector<torch::Tensor> keep(cfg.num_hidden_layers, torch::zeros({cfg.num_key_value_heads, C}, torch::kBool));
  for (auto& k : keep) k.narrow(1, C - W, W).fill_(true);
  auto a = run(masked2, [&] { masked2.set_keep(S, keep); });
  auto b = run(streaming, [] {});
  EXPECT_LE(max_abs_diff(a[0], b[0]), 1e-4);  // float32 logits, the project's 1e-4
  EXPECT_GT(max_abs_diff(a[0], expected_full[0]), 1e-3);  // eviction matters
  // Stored bytes: (4 prefix + 16 kept + 26 question) of 90 tokens, every head.
  EXPECT_EQ(masked2.bytes() * 90, masked2.full_bytes() * (S + W + 26));
}
