// Golden tests: our forward pass against logits from an independent implementation
// (llama2.c's model.py given the same weights), per ../shared/README.md.
#include <gtest/gtest.h>

#include "cache/cache_factory.h"
#include "io/safetensors.h"
#include "model/generate.h"
#include "model/llama.h"
#include "test_support.h"

using namespace echokv;
using echokv::testing::max_abs_diff;
using echokv::testing::require_fixture;

namespace {

constexpr double kF32Tolerance = 1e-4;  // what the reference itself meets (shared/README.md)

std::vector<int64_t> to_ids(const torch::Tensor& t) {
  auto c = t.to(torch::kInt64).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

torch::Tensor full_logits(LlamaModel& model, const torch::Tensor& ids) {
  auto cache = make_full_cache(model, ids.size(-1));
  return model.forward(ids.view({1, -1}), *cache)[0];
}

std::vector<int64_t> greedy(LlamaModel& model, const std::vector<int64_t>& prompt, int64_t n) {
  auto cache = make_full_cache(model, static_cast<int64_t>(prompt.size()) + n);
  GenerateOptions opt;
  opt.max_new_tokens = n;
  return generate(model, *cache, prompt, opt).tokens;
}

class ReferenceFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceFixture, LogitsMatchReferenceFloat32) {
  const std::string dir = require_fixture("fixtures/reference/" + GetParam());
  auto expected = load_safetensors(dir + "/expected.safetensors");
  for (const auto& device : echokv::testing::test_devices()) {
    LoadOptions lo;
    lo.device = device.str();
    auto model = LlamaModel::load(dir, lo);
    auto logits = full_logits(*model, expected.at("input_ids").to(device)).cpu();
    ASSERT_EQ(logits.sizes(), expected.at("logits").sizes());
    EXPECT_LE(max_abs_diff(logits, expected.at("logits")), kF32Tolerance) << device;
  }
}

TEST_P(ReferenceFixture, GreedyTokensMatchReferenceExactly) {
  const std::string dir = require_fixture("fixtures/reference/" + GetParam());
  auto model = LlamaModel::load(dir);
  auto expected = load_safetensors(dir + "/expected.safetensors");
  auto want = to_ids(expected.at("greedy_tokens"));
  auto got = greedy(*model, to_ids(expected.at("greedy_prompt")), static_cast<int64_t>(want.size()));
  EXPECT_EQ(got, want);
}

TEST_P(ReferenceFixture, ChunkedPrefillMatchesOneShot) {
  const std::string dir = require_fixture("fixtures/reference/" + GetParam());
  auto expected = load_safetensors(dir + "/expected.safetensors");
  for (const auto& device : echokv::testing::test_devices()) {
    LoadOptions lo;
    lo.device = device.str();
    auto model = LlamaModel::load(dir, lo);
    auto ids = expected.at("input_ids").view({1, -1}).to(device);
    auto cache = make_full_cache(*model, 8);  // small capacity: exercises growth too
    std::vector<torch::Tensor> parts;
    for (int64_t s = 0; s < ids.size(1); s += 7) {
      auto piece = ids.narrow(1, s, std::min<int64_t>(7, ids.size(1) - s));
      parts.push_back(model->forward(piece, *cache)[0]);
    }
    EXPECT_LE(max_abs_diff(torch::cat(parts, 0).cpu(), expected.at("logits")), kF32Tolerance) << device;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReferenceFixture,
                         ::testing::Values("llama-gqa-f32-sharded", "llama-mha-bf16-tied"));

// stories260K's logits reach |26|, and the fixture's own float32 rounding shows at that scale:
// evaluating the same weights in float64 (exact arithmetic for this purpose) differs from the
// stored logits by up to 1.3e-4 on an AMD EPYC / OpenBLAS-Haswell machine, so no correct
// float32 implementation can promise 1e-4 to the fixture on every CPU. The contract checked:
// the fixture agrees with exact arithmetic within 2 x 1e-4, and our float32 logits are within
// 1e-4 of the fixture beyond the fixture's own measured deviation from exact arithmetic.
TEST(Stories260K, SampledLogitsMatchReference) {
  const std::string dir = require_fixture("fixtures/reference/stories260K");
  auto model = LlamaModel::load(dir);
  std::map<std::string, torch::Tensor> weights;
  for (const auto& [name, w] : model->named_tensors()) weights[name] = w;
  auto exact_model = LlamaModel::from_tensors(model->config(), weights, torch::kCPU, torch::kFloat64);
  auto expected = load_safetensors(dir + "/expected.safetensors");
  auto ids = expected.at("sampled_ids");          // [4, 256]
  auto want = expected.at("sampled_logits");      // [4, 256, 512]
  std::vector<torch::Tensor> exact_rows;
  for (int64_t row = 0; row < ids.size(0); ++row) {
    auto exact = full_logits(*exact_model, ids[row]);
    const double fixture_noise = max_abs_diff(exact, want[row]);
    EXPECT_LE(fixture_noise, 2 * kF32Tolerance) << "sequence " << row;
    EXPECT_LE(max_abs_diff(full_logits(*model, ids[row]), want[row]), kF32Tolerance + fixture_noise)
        << "sequence " << row;
    exact_rows.push_back(exact);
  }
  // Batched forward (B=4) gives the same numbers.
  const double fixture_noise = max_abs_diff(torch::stack(exact_rows), want);
  auto cache = make_full_cache(*model, ids.size(1), ids.size(0));
  EXPECT_LE(max_abs_diff(model->forward(ids, *cache), want), kF32Tolerance + fixture_noise);
}

TEST(Stories260K, GreedyFromBosMatchesReference) {
  const std::string dir = require_fixture("fixtures/reference/stories260K");
  auto model = LlamaModel::load(dir);
  auto expected = load_safetensors(dir + "/expected.safetensors");
  auto want = to_ids(expected.at("greedy_from_bos"));  // [65] = BOS + 64 tokens
  auto got = greedy(*model, {want[0]}, static_cast<int64_t>(want.size()) - 1);
  got.insert(got.begin(), want[0]);
  EXPECT_EQ(got, want);
}

// bfloat16 compute is a separate, looser contract (8 mantissa bits for weights and
// activations). Error scales with the logits' spread, so it is stated relative to the
// reference logits' standard deviation: mean |diff| <= 5 % of std, and the argmax agrees on
// >= 85 % of positions. Measured here: mean |diff| / std = 1.6 % (mha-bf16), 2.0 % (gqa-f32),
// 3.9 % (stories260K); argmax agreement 95 %, 96 %, 89 %.
class BFloat16Compute : public ::testing::TestWithParam<std::string> {};

TEST_P(BFloat16Compute, CloseToFloat32Reference) {
  const std::string dir = require_fixture("fixtures/reference/" + GetParam());
  LoadOptions opt;
  opt.dtype = "bfloat16";
  auto model = LlamaModel::load(dir, opt);
  EXPECT_EQ(model->dtype(), torch::kBFloat16);
  auto expected = load_safetensors(dir + "/expected.safetensors");
  const bool stories = expected.count("sampled_ids") > 0;
  auto ids = stories ? expected.at("sampled_ids")[0] : expected.at("input_ids");
  auto want = stories ? expected.at("sampled_logits")[0] : expected.at("logits");
  auto logits = full_logits(*model, ids);
  const double mean_err = (logits - want).abs().mean().item<double>();
  EXPECT_LE(mean_err, 0.05 * want.std().item<double>());
  auto agree = (logits.argmax(-1) == want.argmax(-1)).to(torch::kFloat32).mean().item<double>();
  EXPECT_GE(agree, 0.85);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BFloat16Compute,
                         ::testing::Values("llama-gqa-f32-sharded", "llama-mha-bf16-tied", "stories260K"));

}  // namespace
