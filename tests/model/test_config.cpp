#include <gtest/gtest.h>

#include "core/error.h"
#include "model/config.h"

using namespace echokv;
using nlohmann::json;

namespace {

json llama_base() {
  return json::parse(R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":128,
    "hidden_size":64,"intermediate_size":96,"num_hidden_layers":2,"num_attention_heads":4,
    "num_key_value_heads":2,"rms_norm_eps":1e-5,"rope_theta":500000.0})");
}

void expect_config_error(const json& j, const std::string& needle) {
  try {
    ModelConfig::from_json(j, "cfg.json");
    FAIL() << "no error, expected '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ModelConfig, LlamaFieldsAndDerivedHeadDim) {
  auto c = ModelConfig::from_json(llama_base(), "cfg.json");
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.gqa_group(), 2);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::kNone);
}

TEST(ModelConfig, ExplicitHeadDimEosListAndLlama3Scaling) {
  auto j = llama_base();
  j["head_dim"] = 32;
  j["eos_token_id"] = {128001, 128008, 128009};
  j["bos_token_id"] = 128000;
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  auto c = ModelConfig::from_json(j, "cfg.json");
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(c.bos_token_ids, (std::vector<int64_t>{128000}));
  EXPECT_EQ(c.rope_scaling.kind, RopeScaling::Kind::kLlama3);
  EXPECT_EQ(c.rope_scaling.factor, 8.0);
  // "type" is accepted as the older spelling of "rope_type".
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  EXPECT_EQ(ModelConfig::from_json(j, "cfg.json").rope_scaling.kind, RopeScaling::Kind::kLinear);
  // Round trip through to_json.
  auto again = ModelConfig::from_json(c.to_json(), "cfg.json");
  EXPECT_EQ(again.head_dim, 32);
  EXPECT_EQ(again.rope_scaling.kind, RopeScaling::Kind::kLlama3);
  EXPECT_EQ(again.eos_token_ids, c.eos_token_ids);
}

TEST(ModelConfig, MistralSlidingWindowDefaultsAndNull) {
  auto j = llama_base();
  j["model_type"] = "mistral";
  j["architectures"] = {"MistralForCausalLM"};
  EXPECT_EQ(ModelConfig::from_json(j, "cfg.json").sliding_window.value(), 4096);
  j["sliding_window"] = nullptr;
  EXPECT_FALSE(ModelConfig::from_json(j, "cfg.json").sliding_window.has_value());
  j["sliding_window"] = 16;
  EXPECT_EQ(ModelConfig::from_json(j, "cfg.json").sliding_window.value(), 16);
}

TEST(ModelConfig, UnsupportedInputsAreClearErrors) {
  auto j = llama_base();
  j["model_type"] = "gpt2";
  j["architectures"] = {"GPT2LMHeadModel"};
  expect_config_error(j, "unsupported architecture");
  j = llama_base();
  j["attention_bias"] = true;
  expect_config_error(j, "attention_bias");
  j = llama_base();
  j["num_key_value_heads"] = 3;
  expect_config_error(j, "not a multiple");
  j = llama_base();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_config_error(j, "'yarn' is not supported");
  j = llama_base();
  j["hidden_act"] = "gelu";
  expect_config_error(j, "hidden_act");
  j = llama_base();
  j["hidden_size"] = "64";
  expect_config_error(j, "'hidden_size' must be an integer");
}

}  // namespace

TEST(ModelConfig, NumbersThatOnceGaveGarbageAreRefused) {
  auto j = llama_base();
  j["rms_norm_eps"] = -1e-5;
  expect_config_error(j, "'rms_norm_eps' must be a non-negative number");
  j = llama_base();
  j["rope_theta"] = 0.0;
  expect_config_error(j, "'rope_theta' must be a positive number");
  j = llama_base();
  j["rope_theta"] = -500000.0;
  expect_config_error(j, "'rope_theta' must be a positive number");
  j = llama_base();
  j["max_position_embeddings"] = 0;
  expect_config_error(j, "'max_position_embeddings' must be positive");
  j = llama_base();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 0.0}, {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  expect_config_error(j, "low_freq_factor > 0");
  j = llama_base();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", -1}};
  expect_config_error(j, "original_max_position_embeddings > 0");
}
