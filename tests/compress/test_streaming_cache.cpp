// StreamingLLM cache: with room for everything it is the full cache; with no sink and a
// window W, token-by-token decoding equals a sliding-window (W+1) model; stored bytes are
// exactly (sink + window) / n, and a ratio sets the window per prompt.
#include <gtest/gtest.h>

#include "compress/streaming_cache.h"
#include "io/safetensors.h"
#include "model/session.h"
#include "model/model_test_util.h"
#include "methods/method_test_util.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

torch::Tensor streaming_logits(LlamaModel& model, int64_t sink, int64_t window, const std::vector<int64_t>& ids,
                               int64_t chunk, double* ratio = nullptr) {
  StreamingCache cache(model.config(), model.rope(), 1, sink, window, model.device(), model.dtype());
  auto logits = sequence_logits(model, ids, chunk, cache);
  if (ratio) *ratio = static_cast<double>(cache.bytes()) / static_cast<double>(cache.full_bytes());
  return logits;
}

}  // namespace

TEST(StreamingCache, WithRoomForEverythingItIsTheFullCache) {
  for (const auto& device : test_devices()) {
    auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), device.str(), "float32", 1);
    const auto ids = stories260k_sampled_ids(1, 64);
    double ratio = 0;
    EXPECT_LE(max_abs_diff(sequence_logits(*model, ids, 16), streaming_logits(*model, 4, 60, ids, 16, &ratio)), 1e-4)
        << device;
    EXPECT_DOUBLE_EQ(ratio, 1.0);
  }
}

TEST(StreamingCache, NoSinkWindowWDecodesLikeASlidingWindowModel) {
  auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
  const auto ids = stories260k_sampled_ids(1, 72);
  const int64_t W = 20;
  // The reference: the same weights as a Mistral-style model attending to the last W+1 positions.
  auto cfg = model->config();
  cfg.model_type = "mistral";
  cfg.sliding_window = W + 1;
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, t] : model->named_tensors()) tensors[name] = t;
  auto windowed = LlamaModel::from_tensors(cfg, tensors, torch::kCPU, torch::kFloat32);
  auto expected = sequence_logits(*windowed, ids, 1);
  double ratio = 0;
  auto got = streaming_logits(*model, 0, W, ids, 1, &ratio);
  EXPECT_LE(max_abs_diff(expected, got), 1e-4);
  EXPECT_GT(max_abs_diff(sequence_logits(*model, ids, 1), got), 1e-2);  // it does evict
  EXPECT_DOUBLE_EQ(ratio, static_cast<double>(W) / 72.0);
  // Sinks change the result and are counted: (4 + 20) / 72.
  auto with_sink = streaming_logits(*model, 4, W, ids, 1, &ratio);
  EXPECT_GT(max_abs_diff(with_sink, got), 1e-3);
  EXPECT_DOUBLE_EQ(ratio, 24.0 / 72.0);
}

TEST(StreamingCache, RatioSetsTheWindowFromThePrompt) {
  auto model = load_model_for_run(require_fixture("fixtures/reference/stories260K"), "cpu", "float32", 1);
  auto method = prepared_method(*model, "{cache: streaming, sink_tokens: 4, ratio: 0.3}");
  auto cache = method->make_cache(*model, 200, 100);
  EXPECT_EQ(dynamic_cast<StreamingCache&>(*cache).window(), 26);
  const auto ids = stories260k_sampled_ids(1, 100);
  sequence_logits(*model, ids, 16, *cache);
  EXPECT_DOUBLE_EQ(static_cast<double>(cache->bytes()) / static_cast<double>(cache->full_bytes()), 0.3);
  EXPECT_THROW(StreamingCache(model->config(), model->rope(), 1, 0, 0, torch::kCPU, torch::kFloat32), Error);
}
