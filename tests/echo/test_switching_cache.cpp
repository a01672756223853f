// EchoKV's on-demand transition: before the budget the cache is the full cache (same logits,
// same bytes); from the forward that would pass it on, it holds what an EchoCache used from
// the start holds (stored features and bytes) and gives its logits; a prompt longer than the
// budget converts at once; reset starts on the full cache again.
#include <gtest/gtest.h>

#include "echo/exact_echo_model.h"
#include "echo/head_plan.h"
#include "echo/switching_cache.h"
#include "methods/registry.h"
#include "model/model_test_util.h"
#include "model/random_model.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

struct Switching {
  ModelConfig config = tiny_config();
  std::shared_ptr<LlamaModel> model = make_random_model(config, 21);
  std::shared_ptr<Reconstructor> recon;
  EchoCacheOptions options;
  Switching() {
    const PlanShape shape{config.num_hidden_layers, config.num_key_value_heads, config.head_dim};
    recon = std::make_shared<Reconstructor>(HeadPlan::paper_for_ratio(shape, 0.5, 2), true, 5);
    options.sink_tokens = 2;
    options.recent_tokens = 8;
    options.chunk_tokens = 16;
  }
  std::unique_ptr<EchoCache> echo() const {
    return std::make_unique<EchoCache>(config, model->rope(), recon, 1, options, torch::kCPU, torch::kFloat32);
  }
  std::unique_ptr<SwitchingEchoCache> switching(int64_t limit) const {
    auto full = [this] { return std::make_unique<FullCache>(config, model->rope(), 1, 16, torch::kCPU, torch::kFloat32); };
    return std::make_unique<SwitchingEchoCache>(full, limit, [this] { return echo(); }, model->rope());
  }
};

std::vector<int64_t> tokens(int64_t n, int64_t seed) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back(1 + (i * 37 + seed * 11) % 96);
  return ids;
}

torch::Tensor step(LlamaModel& model, KVCache& cache, const std::vector<int64_t>& ids) {
  return model.forward(torch::tensor(ids, torch::kInt64).view({1, -1}), cache);
}

}  // namespace

// Hands every forward's keys (before RoPE) and values to a second cache: an EchoCache fed
// exactly what the full-cache run computed (the reference the conversion must reproduce).
struct Mirror : LayerObserver {
  KVCache& target;
  explicit Mirror(KVCache& t) : target(t) {}
  void on_qkv(int l, const torch::Tensor&, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& p) override {
    target.append(l, k, v, p);
  }
};

TEST(SwitchingEchoCache, IsTheFullCacheUntilTheBudgetThenHoldsWhatEchoKVFedTheSameStatesHolds) {
  Switching s;
  const auto prompt = tokens(40, 1), decode = tokens(30, 2);
  auto sw = s.switching(50);
  auto ref = s.echo();
  FullCache full(s.config, s.model->rope(), 1, 128, torch::kCPU, torch::kFloat32);
  Mirror mirror(*ref);
  ForwardOptions fo;
  fo.observer = &mirror;
  auto run_full = [&](const std::vector<int64_t>& ids) {
    auto logits = s.model->forward(torch::tensor(ids, torch::kInt64).view({1, -1}), full, fo);
    ref->advance(static_cast<int64_t>(ids.size()));
    return logits;
  };
  for (int64_t c = 0; c < 40; c += 16) {  // a chunked prefill
    std::vector<int64_t> chunk(prompt.begin() + c, prompt.begin() + std::min<int64_t>(40, c + 16));
    EXPECT_LE(max_abs_diff(step(*s.model, *sw, chunk), run_full(chunk)), 1e-6);
  }
  EXPECT_FALSE(sw->switched());
  EXPECT_EQ(sw->bytes(), full.bytes());
  for (size_t i = 0; i < 10; ++i) {  // up to the budget: the full cache
    EXPECT_LE(max_abs_diff(step(*s.model, *sw, {decode[i]}), run_full({decode[i]})), 1e-6) << "step " << i;
    EXPECT_FALSE(sw->switched()) << "step " << i;
  }
  // the next forward converts: from here on the reference is the EchoCache fed the full run's states
  for (size_t i = 10; i < decode.size(); ++i) {
    const auto a = step(*s.model, *sw, {decode[i]});
    const auto b = step(*s.model, *ref, {decode[i]});
    ASSERT_TRUE(sw->switched()) << "step " << i;
    EXPECT_LE(max_abs_diff(a, b), 1e-5) << "step " << i;
    EXPECT_EQ(sw->bytes(), ref->bytes()) << "step " << i;
  }
  EXPECT_EQ(sw->switched_at(), 50);
  EXPECT_LT(sw->bytes(), sw->full_bytes());  // bytes dropped at the switch
  EXPECT_EQ(sw->full_bytes(), ref->full_bytes());
  for (int l = 0; l < s.config.num_hidden_layers; ++l)
    for (KVKind kind : {KVKind::Key, KVKind::Value})
      if (!s.recon->compressed(l, kind))
        EXPECT_LE(max_abs_diff(sw->echo()->global_features(l, kind), ref->global_features(l, kind)), 1e-5) << l;
  sw->reset();
  EXPECT_FALSE(sw->switched());
  EXPECT_EQ(sw->next_position(), 0);
  FullCache again(s.config, s.model->rope(), 1, 64, torch::kCPU, torch::kFloat32);
  EXPECT_LE(max_abs_diff(step(*s.model, *sw, prompt), step(*s.model, again, prompt)), 1e-6);
}

TEST(SwitchingEchoCache, APromptBeyondTheBudgetConvertsBeforeItsFirstToken) {
  Switching s;
  const auto prompt = tokens(30, 3);
  auto sw = s.switching(20);
  auto echo = s.echo();
  EXPECT_LE(max_abs_diff(step(*s.model, *sw, prompt), step(*s.model, *echo, prompt)), 1e-5);
  EXPECT_TRUE(sw->switched());
  EXPECT_EQ(sw->switched_at(), 0);
  EXPECT_EQ(sw->bytes(), echo->bytes());
}

TEST(SwitchingEchoCache, TheEchoMethodOptionsAreCheckedAndExclusive) {
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: echo, echo_dir: x, switch_at_tokens: 10, memory_budget_mib: 1}"); })
                .find("not both"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: echo, echo_dir: x, switch_at_tokens: -1}"); }).find("switch_at_tokens"),
            std::string::npos);
}

TEST(SwitchingEchoCache, OnAnExactByConstructionModelItEqualsTheFullCacheAcrossTheSwitch) {
  ExactEchoModel exact(3, 4);
  EchoCacheOptions o;
  o.sink_tokens = 2;
  o.recent_tokens = 4;
  auto full_maker = [&] { return std::make_unique<FullCache>(exact.config, exact.model->rope(), 1, 8, torch::kCPU, torch::kFloat32); };
  auto echo_maker = [&] {
    return std::make_unique<EchoCache>(exact.config, exact.model->rope(), exact.recon, 1, o, torch::kCPU, torch::kFloat32);
  };
  SwitchingEchoCache sw(full_maker, 24, echo_maker, exact.model->rope());
  FullCache full(exact.config, exact.model->rope(), 1, 64, torch::kCPU, torch::kFloat32);
  const auto ids = tokens(48, 5);
  EXPECT_LE(max_abs_diff(step(*exact.model, sw, {ids.begin(), ids.begin() + 20}), step(*exact.model, full, {ids.begin(), ids.begin() + 20})),
            1e-5);
  for (int64_t i = 20; i < 48; ++i)
    EXPECT_LE(max_abs_diff(step(*exact.model, sw, {ids[i]}), step(*exact.model, full, {ids[i]})), 1e-4) << "token " << i;
  EXPECT_TRUE(sw.switched());
  EXPECT_LT(sw.bytes(), full.bytes());
}
