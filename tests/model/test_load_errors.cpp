#include <limits>
#include <fstream>

#include <gtest/gtest.h>

#include "cache/cache_factory.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/llama.h"
#include "model/model_test_util.h"
#include "model/random_model.h"
#include "model/session.h"
#include "tokenizer/tokenizer.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

TEST(ModelLoad, StoredFloat16IsUpcastAndMatchesFloat32) {
  TempDir dir;
  auto cfg = tiny_config();
  auto tensors = random_llama_tensors(cfg, 5);
  for (auto& kv : tensors) kv.second = kv.second.to(torch::kFloat16).to(torch::kFloat32);  // f16-exact values
  save_model_folder(dir.path(), cfg, tensors, torch::kFloat16);
  auto model = LlamaModel::load(dir.path());
  EXPECT_EQ(model->dtype(), torch::kFloat32);
  auto ref = LlamaModel::from_tensors(cfg, tensors, torch::kCPU, torch::kFloat32);
  auto ids = torch::arange(10, torch::kInt64).view({1, 10});
  EXPECT_LE(max_abs_diff(model->forward(ids, *make_full_cache(*model, 10)),
                         ref->forward(ids, *make_full_cache(*ref, 10))), 1e-6);
}

TEST(ModelLoad, MissingTensorAndWrongShapeNameFileAndTensor) {
  TempDir dir;
  auto cfg = tiny_config();
  auto tensors = random_llama_tensors(cfg, 5);
  tensors.erase("model.layers.1.mlp.up_proj.weight");
  save_model_folder(dir.path(), cfg, tensors);
  auto msg = error_of([&] { LlamaModel::load(dir.path()); });
  EXPECT_NE(msg.find("missing tensor 'model.layers.1.mlp.up_proj.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.path()), std::string::npos) << msg;

  tensors = random_llama_tensors(cfg, 5);
  tensors["model.layers.0.self_attn.k_proj.weight"] = torch::zeros({48, 48});
  save_model_folder(dir.path(), cfg, tensors);
  msg = error_of([&] { LlamaModel::load(dir.path()); });
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'model.layers.0.self_attn.k_proj.weight' has shape [48, 48]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("implies [16, 48]"), std::string::npos) << msg;
}

TEST(ModelLoad, BiasTensorsAndUnknownArchitectureAreRejected) {
  TempDir dir;
  auto cfg = tiny_config();
  auto tensors = random_llama_tensors(cfg, 5);
  tensors["model.layers.0.self_attn.q_proj.bias"] = torch::zeros({48});
  save_model_folder(dir.path(), cfg, tensors);
  auto msg = error_of([&] { LlamaModel::load(dir.path()); });
  EXPECT_NE(msg.find("q_proj.bias"), std::string::npos) << msg;

  std::ofstream(dir.file("config.json"), std::ios::trunc)
      << R"({"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2"})";
  msg = error_of([&] { LlamaModel::load(dir.path()); });
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unsupported architecture"), std::string::npos) << msg;

  std::ofstream(dir.file("config.json"), std::ios::trunc) << "{ not json";
  msg = error_of([&] { LlamaModel::load(dir.path()); });
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
}

}  // namespace

TEST(ModelLoad, NonFiniteWeightsAreRefusedNamingTheTensor) {
  TempDir dir;
  auto cfg = tiny_config();
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    auto tensors = random_llama_tensors(cfg, 6);
    tensors["model.layers.2.mlp.down_proj.weight"][3][7] = bad;
    save_model_folder(dir.path(), cfg, tensors);
    const auto msg = error_of([&] { LlamaModel::load(dir.path()); });
    EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'model.layers.2.mlp.down_proj.weight' holds NaN or Inf"), std::string::npos) << msg;
  }
}

TEST(ModelLoad, ATokenizerWithMoreTokensThanTheModelEmbedsIsAnotherModels) {
  auto model = make_random_model(tiny_config(), 2);  // 97 tokens
  const std::string path = require_fixture("fixtures/tokenizers/llama2/tokenizer.model");
  auto tokenizer = load_tokenizer(path);
  const auto msg = error_of([&] { check_tokenizer_fits(*model, *tokenizer, path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("the tokenizer has 32000 tokens but the model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("embeds 97"), std::string::npos) << msg;
}
