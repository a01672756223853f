// The differentiable training forward computes the same logits as cached inference, and
// its gradients reach the weights.
#include <gtest/gtest.h>

#include "cache/cache_factory.h"
#include "model/model_test_util.h"
#include "model/random_model.h"
#include "model/train_forward.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

TEST(TrainForward, EqualsInferenceLogitsForLlamaAndSlidingWindowMistral) {
  for (const std::string type : {"llama", "mistral"}) {
    auto cfg = tiny_config(type);
    if (type == "mistral") cfg.sliding_window = 6;
    auto model = make_random_model(cfg, 21);
    auto gen = at::detail::createCPUGenerator(3);
    auto ids = at::randint(0, cfg.vocab_size, {2, 24}, gen, torch::kInt64);
    auto want = model->forward(ids, *make_full_cache(*model, 24, 2));
    torch::NoGradGuard no_grad;
    EXPECT_LE(max_abs_diff(training_logits(*model, ids), want), 1e-4) << type;
  }
}

TEST(TrainForward, GradientsReachEveryWeight) {
  auto cfg = tiny_config();
  auto tensors = random_llama_tensors(cfg, 2);
  for (auto& kv : tensors) kv.second.set_requires_grad(true);
  auto model = LlamaModel::from_tensors(cfg, tensors, torch::kCPU, torch::kFloat32);
  auto ids = torch::arange(16, torch::kInt64).view({1, 16}) % cfg.vocab_size;
  training_logits(*model, ids).logsumexp(-1).mean().backward();
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_GT(t.grad().abs().sum().item<double>(), 0.0) << name;
  }
}
