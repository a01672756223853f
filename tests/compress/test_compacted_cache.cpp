// The physically compacted per-head cache (KVzip / SnapKV storage) against the retain-mode
// masked full cache: the same kept pairs must give the same attention, through a question
// prefill and decode steps that outgrow the per-head headroom; bytes count exactly the kept
// pairs. Then the KVzip method end to end (kvzip_prefill): compact == retain, ratio 1 == full.
#include <gtest/gtest.h>

#include "cache/cache_factory.h"
#include "compress/compacted_cache.h"
#include "compress/kvzip_eviction.h"
#include "compress/kvzip_prefill.h"
#include "methods/method.h"
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

// Logits of `tail` fed after `head` (one chunk), then one token at a time.
torch::Tensor run_tail(LlamaModel& model, KVCache& cache, const std::vector<int64_t>& question,
                       const std::vector<int64_t>& decode) {
  std::vector<torch::Tensor> out;
  out.push_back(model.forward(torch::tensor(question, torch::kInt64).unsqueeze(0), cache)[0]);
  for (int64_t t : decode) out.push_back(model.forward(torch::tensor({t}, torch::kInt64).unsqueeze(0), cache)[0]);
  return torch::cat(out);
}

}  // namespace

TEST(CompactedCache, AttentionEqualsMaskedAttention) {
  auto model = stories();
  const auto& cfg = model->config();
  const auto ids = stories260k_sampled_ids(1, 120);
  const int64_t S = 4, C = 70;  // prefix 0..3, context 4..73, question 74..85, decode 86..119
  const std::vector<int64_t> prompt(ids.begin(), ids.begin() + S + C), question(ids.begin() + S + C, ids.begin() + S + C + 12),
      decode(ids.begin() + S + C + 12, ids.end());
  torch::manual_seed(11);
  std::vector<torch::Tensor> keep;  // different counts per head, one head keeps nothing
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    auto m = torch::rand({cfg.num_key_value_heads, C}) < (0.2 + 0.15 * static_cast<double>(l));
    if (l == 1) m[0].fill_(false);
    keep.push_back(m);
  }
  auto full = make_full_cache(*model, 128);
  model->forward(torch::tensor(prompt, torch::kInt64).unsqueeze(0), *full);
  CompactedCache compact(*full, model->rope(), S, keep, /*headroom=*/5);  // 46 later tokens: grows several times
  int64_t kept = 0;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
    for (int64_t h = 0; h < cfg.num_key_value_heads; ++h) {
      const int64_t n = keep[l][h].sum().item<int64_t>();
      EXPECT_EQ(compact.head_length(static_cast<int>(l), h), S + n);
      kept += S + n;
    }
  const int64_t pair_bytes = 2 * cfg.head_dim * 4;
  EXPECT_EQ(compact.bytes(), kept * pair_bytes);
  EXPECT_EQ(compact.full_bytes(), (S + C) * cfg.num_hidden_layers * cfg.num_key_value_heads * pair_bytes);

  MaskedFullCache masked(make_full_cache(*model, 128));
  model->forward(torch::tensor(prompt, torch::kInt64).unsqueeze(0), masked);
  masked.set_keep(S, keep);
  const auto a = run_tail(*model, compact, question, decode);
  const auto b = run_tail(*model, masked, question, decode);
  EXPECT_LE(max_abs_diff(a, b), 1e-4);
  EXPECT_EQ(compact.next_position(), 120);
  EXPECT_EQ(compact.bytes(), (kept + 46 * cfg.num_hidden_layers * cfg.num_key_value_heads) * pair_bytes);
  EXPECT_EQ(compact.bytes(), masked.bytes());
  // And it really evicted something: the full cache's logits differ.
  auto plain = make_full_cache(*model, 128);
  model->forward(torch::tensor(prompt, torch::kInt64).unsqueeze(0), *plain);
  EXPECT_GT(max_abs_diff(a, run_tail(*model, *plain, question, decode)), 1e-2);
}

TEST(CompactedCache, OneCompressedContextServesSeveralQuestions) {
  auto model = stories();
  const auto& cfg = model->config();
  const auto ids = stories260k_sampled_ids(3, 110);
  const int64_t S = 2, C = 60;
  const std::vector<int64_t> prompt(ids.begin(), ids.begin() + S + C), q1(ids.begin() + 62, ids.begin() + 80),
      q2(ids.begin() + 80, ids.begin() + 95), answer(ids.begin() + 95, ids.end());
  torch::manual_seed(5);
  std::vector<torch::Tensor> keep;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) keep.push_back(torch::rand({cfg.num_key_value_heads, C}) < 0.5);
  auto full = make_full_cache(*model, 128);
  model->forward(torch::tensor(prompt, torch::kInt64).unsqueeze(0), *full);
  CompactedCache reused(*full, model->rope(), S, keep, 4);
  const int64_t context_bytes = reused.bytes();
  run_tail(*model, reused, q1, answer);  // first question and its answer
  reused.truncate(S + C);
  EXPECT_EQ(reused.bytes(), context_bytes);
  EXPECT_EQ(reused.next_position(), S + C);
  CompactedCache fresh(*full, model->rope(), S, keep, 4);
  EXPECT_LE(max_abs_diff(run_tail(*model, reused, q2, answer), run_tail(*model, fresh, q2, answer)), 1e-5);
  EXPECT_THROW(reused.truncate(1000), Error);
}

TEST(CompactedCache, KeepingEverythingEqualsTheFullCache) {
  auto model = stories();
  const auto& cfg = model->config();
  const auto ids = stories260k_sampled_ids(2, 80);
  const std::vector<int64_t> prompt(ids.begin(), ids.begin() + 60), question(ids.begin() + 60, ids.begin() + 64),
      decode(ids.begin() + 64, ids.end());
  auto full = make_full_cache(*model, 128);
  model->forward(torch::tensor(prompt, torch::kInt64).unsqueeze(0), *full);
  std::vector<torch::Tensor> keep(cfg.num_hidden_layers, torch::ones({cfg.num_key_value_heads, 50}, torch::kBool));
  CompactedCache compact(*full, model->rope(), 10, keep, 1);
  const auto a = run_tail(*model, compact, question, decode);
  const auto b = run_tail(*model, *full, question, decode);
  EXPECT_LE(max_abs_diff(a, b), 1e-4);
  EXPECT_EQ(compact.bytes(), full->bytes());
  EXPECT_THROW(CompactedCache(*full, model->rope(), 60, keep, 1), Error);  // mask beyond the cache
}

TEST(CompactedCache, KvzipPrefillCompactEqualsRetainAndRatioOneIsFull) {
  auto model = stories();
  const auto ids = stories260k_sampled_ids(0, 110);
  const std::vector<int64_t> prompt(ids.begin(), ids.begin() + 96);
  PromptSpan span;
  span.context_begin = 1;
  span.context_end = 88;  // 87 context tokens, 8 question tokens
  KvzipPrompts prompts;
  prompts.first = {ids[100], ids[101], ids[102]};  // any in-vocabulary repeat prompt
  prompts.later = {ids[103], ids[104]};
  prompts.chunk_tokens = 40;  // three chunks, with the 8-token overlap
  KvzipScoring scoring;
  scoring.prompts = std::make_shared<KvzipPrompts>(prompts);
  KvzipOptions o;
  o.chunk_tokens = 40;
  GenerateOptions g;
  g.max_new_tokens = 12;
  auto run = [&](PreparedPrompt p) {
    auto r = generate_from(*model, *p.cache, p.logits, g);
    return std::make_tuple(r.tokens, p.logits, static_cast<double>(p.cache->bytes()) / p.cache->full_bytes());
  };
  auto decode = [&](const KvzipOptions& options) {
    return run(kvzip_prefill(*model, options, options.ratio, scoring, {}, prompt, span, 128, 32));
  };
  const auto [full_tokens, full_logits, full_ratio] = run(prefill_plain(*model, make_full_cache(*model, 128), prompt, 32));
  o.ratio = 1.0;
  const auto [t1, l1, r1] = decode(o);
  EXPECT_EQ(t1, full_tokens);
  EXPECT_LE(max_abs_diff(l1, full_logits), 1e-4);
  EXPECT_DOUBLE_EQ(r1, 1.0);
  for (const std::string level : {"pair", "uniform"}) {
    o.ratio = 0.3;
    o.level = level;
    o.storage = "compact";
    const auto [tc, lc, rc] = decode(o);
    o.storage = "retain";
    const auto [tr, lr, rr] = decode(o);
    EXPECT_EQ(tc, tr) << level;
    EXPECT_LE(max_abs_diff(lc, lr), 1e-4) << level;
    EXPECT_DOUBLE_EQ(rc, rr) << level;
    // 30 % of the 87 context pairs stay; prefix, question and answer are whole.
    EXPECT_LT(rc, 0.6) << level;
  }
  span.context_end = -1;
  EXPECT_THROW(kvzip_prefill(*model, o, o.ratio, scoring, {}, prompt, span, 128, 32), Error);  // no split known
}

TEST(KvzipEviction, HeadLevelKeepsTheBestWholeHeads) {
  std::vector<torch::Tensor> pair_scores = {torch::tensor({{0.1f, 0.9f, 0.2f}, {0.3f, 0.2f, 0.1f}}),
                                            torch::tensor({{0.5f, 0.4f, 0.0f}, {0.05f, 0.0f, 0.01f}})};
  auto heads = kvzip_head_scores(pair_scores);  // max over tokens: [0.9, 0.3], [0.5, 0.05]
  std::vector<torch::Tensor> other = {torch::tensor({0.0f, 0.0f}), torch::tensor({0.0f, 0.7f})};
  kvzip_merge_head_scores(heads, other);  // [0.9, 0.3], [0.5, 0.7]
  // int(4 * 0.5) = 2: the official threshold keeps the heads above the 2nd best (0.7): (0, 0) only
  auto keep = kvzip_keep_heads(heads, 0.5, 6);
  EXPECT_TRUE(keep[0][0].all().item<bool>());
  EXPECT_FALSE(keep[0][1].any().item<bool>());
  EXPECT_FALSE(keep[1][0].any().item<bool>());
  EXPECT_FALSE(keep[1][1].any().item<bool>());
  EXPECT_EQ(keep[1].size(1), 6);
  // 0.75: int(3) -> above the 3rd best (0.5): (0, 0) and (1, 1)
  auto three = kvzip_keep_heads(heads, 0.75, 6);
  EXPECT_TRUE(three[0][0].all().item<bool>());
  EXPECT_TRUE(three[1][1].all().item<bool>());
  EXPECT_FALSE(three[1][0].any().item<bool>());
  EXPECT_EQ(kvzip_keep_heads(heads, 1.0, 6)[0].sum().item<int64_t>() + kvzip_keep_heads(heads, 1.0, 6)[1].sum().item<int64_t>(), 24);
}
