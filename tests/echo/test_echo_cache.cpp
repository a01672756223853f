// EchoCache: with reconstructors that are exact by construction, compressed inference gives
// the full cache's logits; stored bytes are exactly what the plan and the sink/recent
// windows imply; the same model object switches full -> echo -> full with no change.
#include <gtest/gtest.h>

#include "cache/cache_factory.h"
#include "echo/echo_cache.h"
#include "methods/method.h"
#include "model/attention.h"
#include "model/model_test_util.h"
#include "model/random_model.h"
#include "echo/exact_echo_model.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

// Exact reconstructors by construction (exact_echo_model.h).
struct ExactSetup : ExactEchoModel {
  ExactSetup() : ExactEchoModel(21, 4) {}
};

// Prefill `prompt` in chunks of 7, then decode `steps` greedy tokens; returns all logits [N, V].
torch::Tensor run(LlamaModel& model, KVCache& cache, const std::vector<int64_t>& prompt, int steps,
                  std::vector<int64_t>* tokens) {
  std::vector<torch::Tensor> out;
  auto ids = torch::tensor(prompt).view({1, -1}).to(model.device());
  for (int64_t s = 0; s < ids.size(1); s += 7)
    out.push_back(model.forward(ids.narrow(1, s, std::min<int64_t>(7, ids.size(1) - s)), cache)[0]);
  for (int i = 0; i < steps; ++i) {
    const int64_t next = tokens->size() > size_t(i) ? (*tokens)[i] : out.back()[-1].argmax().item<int64_t>();
    if (tokens->size() <= size_t(i)) tokens->push_back(next);
    out.push_back(model.forward(torch::tensor({next}).view({1, 1}).to(model.device()), cache)[0]);
  }
  return torch::cat(out, 0).cpu();
}

std::vector<int64_t> prompt_ids(int64_t n, int64_t vocab) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back((i * 37 + 11) % vocab);
  return ids;
}

}  // namespace

TEST(EchoCache, ExactReconstructorsGiveFullCacheLogitsOnEveryDevice) {
  for (const auto& device : test_devices()) {
    ExactEchoModel s(21, 4, true, device);
    const auto prompt = prompt_ids(30, s.config.vocab_size);
    std::vector<int64_t> tokens;
    auto want = run(*s.model, *make_full_cache(*s.model, 8), prompt, 50, &tokens);
    EXPECT_LE(max_abs_diff(run(*s.model, *s.echo_cache(2, 5, 4), prompt, 50, &tokens), want), 1e-4) << device;
  }
}

TEST(EchoCache, ExactReconstructorsGiveFullCacheLogits) {
  ExactSetup s;
  const auto prompt = prompt_ids(30, s.config.vocab_size);
  std::vector<int64_t> tokens;
  auto full = make_full_cache(*s.model, 8);
  auto want = run(*s.model, *full, prompt, 50, &tokens);
  auto echo = s.echo_cache(2, 5, 4);
  auto got = run(*s.model, *echo, prompt, 50, &tokens);
  EXPECT_LE(max_abs_diff(got, want), 1e-4);
  // The same cache with a wrong map does differ: the rebuilt part is really used.
  auto wrong = std::make_shared<Reconstructor>(s.recon->plan(), false, 3);
  EchoCacheOptions o;
  o.sink_tokens = 2;
  o.recent_tokens = 5;
  EchoCache bad(s.config, s.model->rope(), wrong, 1, o, torch::kCPU, torch::kFloat32);
  EXPECT_GT(max_abs_diff(run(*s.model, bad, prompt, 50, &tokens), want), 1e-2);
}

TEST(EchoCache, StoredBytesAreExactlyThePlanPlusWindows) {
  ExactSetup s;
  const int64_t sink = 3, recent = 6, F = s.config.kv_dim(), D = s.config.head_dim;
  auto echo = s.echo_cache(sink, recent, 5);
  std::vector<int64_t> tokens;
  for (int64_t n : {2, 9, 40}) {
    echo->reset();
    tokens.clear();
    run(*s.model, *echo, prompt_ids(n, s.config.vocab_size), 0, &tokens);
    // Layer 0: K and V whole. Layers 1, 2 (K and V each): sink + recent tokens whole, the rest kept head only.
    const int64_t whole = std::min(n, sink) + std::min(recent, std::max<int64_t>(0, n - sink));
    const int64_t middle = n - whole;
    const int64_t elements = 2 * n * F + 4 * (whole * F + middle * D);
    EXPECT_EQ(echo->bytes(), elements * 4) << n;
    EXPECT_EQ(echo->full_bytes(), 3 * 2 * n * F * 4) << n;
  }
  // Long contexts approach the plan's ratio: (2F + 4D) / 6F.
  EXPECT_DOUBLE_EQ(echo->plan_ratio(), double(2 * F + 4 * D) / double(6 * F));
  EXPECT_NE(cache_report_line(*echo).find("x full"), std::string::npos);
}

TEST(EchoCache, SwitchingFullEchoFullLeavesTheModelUntouched) {
  ExactSetup s;
  const auto prompt = prompt_ids(25, s.config.vocab_size);
  std::vector<int64_t> tokens;
  auto first = run(*s.model, *make_full_cache(*s.model, 4), prompt, 10, &tokens);
  run(*s.model, *s.echo_cache(2, 4, 3), prompt, 10, &tokens);
  auto again = run(*s.model, *make_full_cache(*s.model, 4), prompt, 10, &tokens);
  EXPECT_TRUE(torch::equal(first, again));
}

TEST(EchoCache, LatentValuesEqualRebuiltValues) {
  // A plan with a partial-head kept range, sources, and a bias: feature_map reproduces the
  // rebuilt features, and attention over latent values equals attention over rebuilt ones.
  const int64_t Hkv = 2, D = 8, F = Hkv * D, n = 23;
  HeadPlan plan = HeadPlan::full(PlanShape{2, Hkv, D});
  LayerKindPlan p;
  p.global = false;
  p.kept = {{2, 6}, {9, 10}};
  p.sources = {0};
  plan.v[1] = p;
  plan.k[1] = p;
  Reconstructor r(plan, true, 5);
  torch::manual_seed(8);
  auto source = torch::randn({1, n, F});
  auto own = torch::randn({1, n, F});
  auto input = r.gather_input(1, KVKind::Value, {source}, own);  // [1, n, in]
  auto rebuilt = r.assemble(1, KVKind::Value, own, r.rebuild(1, KVKind::Value, input));
  auto [map, shift] = r.feature_map(1, KVKind::Value);
  EXPECT_LE(max_abs_diff(torch::matmul(input, map.t()) + shift, rebuilt), 1e-5);

  auto q = torch::randn({1, 4, 3, D});
  auto k = torch::randn({1, Hkv, n, D});
  auto qpos = make_query_positions(n - 3, 3, torch::kCPU);
  AttentionOptions opts;
  opts.scale = 0.3;
  auto run_block = [&](bool latent) {
    return attend_blocks(q, qpos, [&](const std::function<void(const KVBlock&)>& visit) {
      for (int64_t a = 0; a < n; a += 10) {  // several blocks: online softmax path
        const int64_t b = std::min(n, a + 10);
        KVBlock blk;
        blk.k = k.narrow(2, a, b - a);
        blk.positions = torch::arange(a, b);
        blk.min_position = a;
        blk.max_position = b - 1;
        if (latent) {
          blk.v_latent = input.narrow(1, a, b - a);
          blk.v_proj = map.view({Hkv, D, map.size(1)});
          blk.v_bias = shift.view({Hkv, D});
        } else {
          blk.v = rebuilt.narrow(1, a, b - a).view({1, b - a, Hkv, D}).permute({0, 2, 1, 3});
        }
        visit(blk);
      }
    }, opts);
  };
  EXPECT_LE(max_abs_diff(run_block(true), run_block(false)), 1e-5);
}
