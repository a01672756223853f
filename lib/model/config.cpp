#include "model/config.h"

#include <cmath>

#include <filesystem>

#include "core/error.h"
#include "core/files.h"

namespace echokv {

using nlohmann::json;

namespace {

int64_t get_int(const json& j, const std::string& key, int64_t fallback, const std::string& src) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number_integer()) fail(src, "'" + key + "' must be an integer");
  return j[key].get<int64_t>();
}

double get_double(const json& j, const std::string& key, double fallback, const std::string& src) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) fail(src, "'" + key + "' must be a number");
  return j[key].get<double>();
}

bool get_bool(const json& j, const std::string& key, bool fallback, const std::string& src) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) fail(src, "'" + key + "' must be true or false");
  return j[key].get<bool>();
}

std::vector<int64_t> get_ids(const json& j, const std::string& key, const std::string& src) {
  std::vector<int64_t> out;
  if (!j.contains(key) || j[key].is_null()) return out;
  const json& v = j[key];
  if (v.is_number_integer()) return {v.get<int64_t>()};
  if (!v.is_array()) fail(src, "'" + key + "' must be an integer or a list of integers");
  for (const json& x : v) {
    if (!x.is_number_integer()) fail(src, "'" + key + "' must be an integer or a list of integers");
    out.push_back(x.get<int64_t>());
  }
  return out;
}

RopeScaling parse_rope_scaling(const json& j, const std::string& src) {
  RopeScaling rs;
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return rs;
  const json& r = j["rope_scaling"];
  if (!r.is_object()) fail(src, "'rope_scaling' must be an object or null");
  std::string type;
  if (r.contains("rope_type") && r["rope_type"].is_string()) type = r["rope_type"].get<std::string>();
  else if (r.contains("type") && r["type"].is_string()) type = r["type"].get<std::string>();
  else fail(src, "'rope_scaling' has no 'rope_type' (or 'type')");
  if (type == "default") return rs;
  if (type == "linear") {
    rs.kind = RopeScaling::Kind::kLinear;
  } else if (type == "llama3") {
    rs.kind = RopeScaling::Kind::kLlama3;
    rs.low_freq_factor = get_double(r, "low_freq_factor", 1.0, src);
    rs.high_freq_factor = get_double(r, "high_freq_factor", 4.0, src);
    rs.original_max_position_embeddings = get_int(r, "original_max_position_embeddings", 8192, src);
    if (rs.high_freq_factor <= rs.low_freq_factor)
      fail(src, "rope_scaling: high_freq_factor must exceed low_freq_factor");
  } else {
    fail(src, "rope_scaling type '" + type + "' is not supported (supported: default, linear, llama3)");
  }
  if (!r.contains("factor")) fail(src, "rope_scaling '" + type + "' needs 'factor'");
  rs.factor = get_double(r, "factor", 1.0, src);
  if (!(rs.factor > 0) || !std::isfinite(rs.factor)) fail(src, "rope_scaling factor must be positive");
  if (rs.kind == RopeScaling::Kind::kLlama3 &&
      (!(rs.low_freq_factor > 0) || !std::isfinite(rs.high_freq_factor) || rs.original_max_position_embeddings <= 0))
    fail(src, "rope_scaling llama3 needs low_freq_factor > 0, a finite high_freq_factor and original_max_position_embeddings > 0");
  return rs;
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& src) {
  if (!j.is_object()) fail(src, "config is not a JSON object");
  ModelConfig c;
  std::string model_type = j.value("model_type", std::string());
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    arch = j["architectures"][0].get<std::string>();
  if (model_type.empty()) {
    if (arch == "LlamaForCausalLM") model_type = "llama";
    else if (arch == "MistralForCausalLM") model_type = "mistral";
  }
  if (model_type != "llama" && model_type != "mistral")
    fail(src, "unsupported architecture (model_type '" + model_type + "', architectures '" + arch +
                  "'): only llama and mistral are supported");
  if (!arch.empty() && arch != "LlamaForCausalLM" && arch != "MistralForCausalLM")
    fail(src, "unsupported architecture '" + arch + "': expected LlamaForCausalLM or MistralForCausalLM");
  c.model_type = model_type;
  const bool mistral = model_type == "mistral";

  c.vocab_size = get_int(j, "vocab_size", 32000, src);
  c.hidden_size = get_int(j, "hidden_size", 4096, src);
  c.intermediate_size = get_int(j, "intermediate_size", mistral ? 14336 : 11008, src);
  c.num_hidden_layers = get_int(j, "num_hidden_layers", 32, src);
  c.num_attention_heads = get_int(j, "num_attention_heads", 32, src);
  c.num_key_value_heads = get_int(j, "num_key_value_heads", mistral ? 8 : c.num_attention_heads, src);
  for (auto [name, v] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size},
                         {"hidden_size", c.hidden_size}, {"intermediate_size", c.intermediate_size},
                         {"num_hidden_layers", c.num_hidden_layers},
                         {"num_attention_heads", c.num_attention_heads},
                         {"num_key_value_heads", c.num_key_value_heads}})
    if (v <= 0) fail(src, std::string("'") + name + "' must be positive");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail(src, "num_attention_heads (" + std::to_string(c.num_attention_heads) +
                  ") is not a multiple of num_key_value_heads (" + std::to_string(c.num_key_value_heads) + ")");
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    c.head_dim = get_int(j, "head_dim", 0, src);
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      fail(src, "hidden_size is not divisible by num_attention_heads and no head_dim is given");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) fail(src, "head_dim must be positive and even");

  c.rope_theta = get_double(j, "rope_theta", 10000.0, src);
  // These once ran as given and produced garbage (all token 0) with exit 0.
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) fail(src, "'rope_theta' must be a positive number");
  c.rope_scaling = parse_rope_scaling(j, src);
  c.rms_norm_eps = get_double(j, "rms_norm_eps", 1e-6, src);
  if (!(c.rms_norm_eps >= 0) || !std::isfinite(c.rms_norm_eps)) fail(src, "'rms_norm_eps' must be a non-negative number");
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", false, src);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", mistral ? 4096 * 32 : 2048, src);
  if (c.max_position_embeddings <= 0) fail(src, "'max_position_embeddings' must be positive");
  if (mistral) {
    // HF MistralConfig defaults to 4096; an explicit null disables the window.
    if (!j.contains("sliding_window")) c.sliding_window = 4096;
    else if (!j["sliding_window"].is_null()) c.sliding_window = get_int(j, "sliding_window", 0, src);
    if (c.sliding_window && *c.sliding_window <= 0) fail(src, "'sliding_window' must be positive or null");
  }
  c.bos_token_ids = get_ids(j, "bos_token_id", src);
  c.eos_token_ids = get_ids(j, "eos_token_id", src);
  if (j.contains("torch_dtype") && j["torch_dtype"].is_string()) c.torch_dtype = j["torch_dtype"].get<std::string>();

  const std::string act = j.value("hidden_act", std::string("silu"));
  if (act != "silu") fail(src, "hidden_act '" + act + "' is not supported (only silu)");
  if (get_bool(j, "attention_bias", false, src)) fail(src, "attention_bias=true is not supported");
  if (get_bool(j, "mlp_bias", false, src)) fail(src, "mlp_bias=true is not supported");
  return c;
}

ModelConfig ModelConfig::load(const std::string& model_dir) {
  if (!std::filesystem::is_directory(model_dir)) fail(model_dir, "model folder does not exist");
  const std::string path = join_path(model_dir, "config.json");
  if (!file_exists(path)) fail(path, "missing config.json in model folder");
  json j;
  try {
    j = json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
  return from_json(j, path);
}

json ModelConfig::to_json() const {
  json j;
  j["architectures"] = {model_type == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  if (rope_scaling.kind == RopeScaling::Kind::kNone) {
    j["rope_scaling"] = nullptr;
  } else if (rope_scaling.kind == RopeScaling::Kind::kLinear) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rope_scaling.factor}};
  } else {
    j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", rope_scaling.factor},
                         {"low_freq_factor", rope_scaling.low_freq_factor},
                         {"high_freq_factor", rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
  }
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (model_type == "mistral") j["sliding_window"] = sliding_window ? json(*sliding_window) : json(nullptr);
  if (bos_token_ids.size() == 1) j["bos_token_id"] = bos_token_ids[0];
  else if (!bos_token_ids.empty()) j["bos_token_id"] = bos_token_ids;
  if (eos_token_ids.size() == 1) j["eos_token_id"] = eos_token_ids[0];
  else if (!eos_token_ids.empty()) j["eos_token_id"] = eos_token_ids;
  j["torch_dtype"] = torch_dtype;
  j["attention_bias"] = false;
  j["mlp_bias"] = false;
  return j;
}

}  // namespace echokv
