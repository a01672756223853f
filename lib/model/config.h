// Model hyper-parameters, read from a HuggingFace `config.json` (LlamaForCausalLM or
// MistralForCausalLM) and resolved to plain values with HF's defaults.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace echokv {

struct RopeScaling {
  enum class Kind { kNone, kLinear, kLlama3 };
  Kind kind = Kind::kNone;
  double factor = 1.0;
  // llama3 only
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string model_type = "llama";          // "llama" or "mistral"
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;
  int64_t head_dim = 128;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  std::optional<int64_t> sliding_window;      // Mistral: attend to the last W positions
  int64_t max_position_embeddings = 2048;
  std::vector<int64_t> bos_token_ids;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "float32";

  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t gqa_group() const { return num_attention_heads / num_key_value_heads; }

  // Parses and validates; `source` names the file in errors.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  static ModelConfig load(const std::string& model_dir);
  // HF-compatible config.json content.
  nlohmann::json to_json() const;
};

}  // namespace echokv
