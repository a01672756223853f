// KVzip scoring: when the context fits one chunk the subset softmax covers every earlier
// token, so the scores must equal the model's own causal attention probabilities from one
// plain forward of [prefix, context, repeat prompt, postfix, context], maxed over the repeat
// queries and the GQA group. The cache is left as it was.
#include <gtest/gtest.h>

#include "cache/cache_factory.h"
#include "compress/kvzip_scoring.h"
#include "io/safetensors.h"
#include "model/session.h"
#include "model/model_test_util.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

struct Capture : LayerObserver {
  std::map<int, std::pair<torch::Tensor, torch::Tensor>> qk;  // layer -> (q_pre, k_pre) of all positions
  void on_qkv(int layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor&, const torch::Tensor&) override {
    qk[layer] = {q.clone(), k.clone()};
  }
};

}  // namespace

TEST(KvzipScoring, OneChunkEqualsTheModelsOwnAttention) {
  auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
  const auto& cfg = model->config();
  const auto seq = stories260k_sampled_ids(2, 70);
  const int64_t S = 4;
  const std::vector<int64_t> prefix(seq.begin(), seq.begin() + S), context(seq.begin() + S, seq.end());
  KvzipPrompts p;
  p.first = {10, 11, 12, 13};
  p.later = {20, 21};
  p.postfix = {30, 31};
  p.chunk_tokens = 1000;

  auto cache = make_full_cache(*model, 256);
  std::vector<int64_t> pc = prefix;
  pc.insert(pc.end(), context.begin(), context.end());
  model->forward(torch::tensor(pc, torch::kInt64).unsqueeze(0), *cache);
  const auto scores = kvzip_scores(*model, *cache, S, context, p);
  EXPECT_EQ(cache->next_position(), static_cast<int64_t>(pc.size()));

  // Direct: one forward of everything, attention probabilities recomputed from its q and k.
  std::vector<int64_t> full = pc;
  for (auto* part : {&p.first, &p.postfix}) full.insert(full.end(), part->begin(), part->end());
  full.insert(full.end(), context.begin(), context.end());
  Capture cap;
  ForwardOptions fo;
  fo.observer = &cap;
  auto fresh = make_full_cache(*model, 256);
  model->forward(torch::tensor(full, torch::kInt64).unsqueeze(0), *fresh, fo);
  const int64_t T = static_cast<int64_t>(full.size()), P = static_cast<int64_t>(pc.size()), R = T - P;
  auto pos = torch::arange(T, torch::kInt64);
  for (int l = 0; l < cfg.num_hidden_layers; ++l) {
    auto q = model->rope()->apply(cap.qk[l].first, pos)[0].to(torch::kFloat64);                        // [Hq, T, D]
    auto k = model->rope()->apply(cap.qk[l].second, pos)[0].to(torch::kFloat64).repeat_interleave(cfg.gqa_group(), 0);
    auto logits = torch::matmul(q, k.transpose(1, 2)) / std::sqrt(static_cast<double>(cfg.head_dim));  // [Hq, T, T]
    logits = logits.masked_fill(torch::ones({T, T}, torch::kBool).triu(1), -INFINITY);
    auto probs = torch::softmax(logits, -1).narrow(1, P, R).narrow(2, S, P - S);                       // [Hq, R, n]
    auto expected = std::get<0>(std::get<0>(probs.max(1)).view({cfg.num_key_value_heads, cfg.gqa_group(), P - S}).max(1));
    EXPECT_LE((expected.to(torch::kFloat32) - scores[l]).abs().max().item<double>(), 1e-5) << "layer " << l;
  }
  // Two chunks score every context token, and differently from one chunk (subset softmax).
  p.chunk_tokens = 40;
  const auto chunked = kvzip_scores(*model, *cache, S, context, p);
  EXPECT_TRUE(chunked[0].gt(0).all().item<bool>());
  EXPECT_GT((chunked[0] - scores[0]).abs().max().item<double>(), 1e-4);
  EXPECT_THROW(kvzip_scores(*model, *fresh, S, context, p), Error);  // cache holds more than prefix + context
}
