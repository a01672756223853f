// Palu-style low-rank cache: at full rank it is the full cache; at rank r it computes exactly
// what the model with rank-r K/V projections (U_r U_r^T W, per group) computes with a full
// cache; stored bytes are exactly r / (g*D) of the full cache.
#include <gtest/gtest.h>

#include "cache/cache_factory.h"
#include "compress/low_rank_cache.h"
#include "io/safetensors.h"
#include "model/session.h"
#include "model/model_test_util.h"
#include "methods/method_test_util.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

torch::Tensor low_rank_logits(LlamaModel& model, const LowRankOptions& o, const std::vector<int64_t>& ids,
                              double* ratio = nullptr) {
  const std::string yaml = "{cache: low_rank, ratio: " + std::to_string(o.ratio) +
                           ", group_heads: " + std::to_string(o.group_heads) + ", chunk_tokens: " + std::to_string(o.chunk_tokens) + "}";
  auto method = prepared_method(model, yaml);
  auto cache = method->make_cache(model, static_cast<int64_t>(ids.size()));
  auto logits = sequence_logits(model, ids, 16, *cache);
  if (ratio) *ratio = static_cast<double>(cache->bytes()) / static_cast<double>(cache->full_bytes());
  return logits;
}

}  // namespace

TEST(LowRankCache, FullRankEqualsTheFullCache) {
  for (const auto& device : test_devices()) {
    auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), device.str(), "float32", 1);
    const auto ids = stories260k_sampled_ids(0, 96);
    auto full = sequence_logits(*model, ids, 16);
    double ratio = 0;
    LowRankOptions o;
    o.ratio = 1.0;
    EXPECT_LE(max_abs_diff(full, low_rank_logits(*model, o, ids, &ratio)), 1e-4) << device;
    EXPECT_DOUBLE_EQ(ratio, 1.0);
    o.group_heads = 1;  // per-head SVD, still full rank
    EXPECT_LE(max_abs_diff(full, low_rank_logits(*model, o, ids)), 1e-4) << device;
  }
}

TEST(LowRankCache, RankRIsTheModelWithRankRProjections) {
  auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
  const auto& c = model->config();
  const auto ids = stories260k_sampled_ids(0, 80);
  LowRankOptions o;
  o.ratio = 0.5;
  o.group_heads = 2;
  const int64_t gd = 2 * c.head_dim, r = gd / 2;
  // The reference: every group of k_proj / v_proj rows replaced by its best rank-r approximation.
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, t] : model->named_tensors()) tensors[name] = t.clone();
  for (int l = 0; l < c.num_hidden_layers; ++l)
    for (const char* kind : {"k_proj", "v_proj"}) {
      auto& w = tensors.at("model.layers." + std::to_string(l) + ".self_attn." + kind + ".weight");
      for (int64_t g0 = 0; g0 < w.size(0); g0 += gd) {
        auto rows = w.slice(0, g0, g0 + gd).to(torch::kFloat64);
        auto [U, S, Vh] = torch::linalg_svd(rows, false);
        auto approx = torch::matmul(U.slice(1, 0, r) * S.slice(0, 0, r), Vh.slice(0, 0, r));
        w.slice(0, g0, g0 + gd).copy_(approx.to(torch::kFloat32));
      }
    }
  auto truncated = LlamaModel::from_tensors(c, tensors, torch::kCPU, torch::kFloat32);
  auto expected = sequence_logits(*truncated, ids, 16);
  double ratio = 0;
  auto got = low_rank_logits(*model, o, ids, &ratio);
  EXPECT_LE(max_abs_diff(expected, got), 1e-4);
  EXPECT_GT(max_abs_diff(sequence_logits(*model, ids, 16), got), 1e-2);  // it does compress
  EXPECT_DOUBLE_EQ(ratio, 0.5);
  o.ratio = 0.25;
  low_rank_logits(*model, o, ids, &ratio);
  EXPECT_DOUBLE_EQ(ratio, 0.25);  // rank 4 of 16
}

TEST(LowRankCache, BadSettingsAreClearErrors) {
  auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
  LowRankOptions o;
  o.group_heads = 3;  // 4 KV heads
  EXPECT_NE(error_of([&] { LowRankBases::from_model(*model, o); }).find("must divide"), std::string::npos);
  o.group_heads = 0;
  o.ratio = 1.5;
  EXPECT_NE(error_of([&] { LowRankBases::from_model(*model, o); }).find("ratio"), std::string::npos);
}
