#include "model/random_model.h"

#include <filesystem>

#include "core/files.h"
#include "io/safetensors.h"

namespace echokv {

std::map<std::string, torch::Tensor> random_llama_tensors(const ModelConfig& c, uint64_t seed, double init_std) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto normal = [&](std::vector<int64_t> shape) {
    return at::normal(0.0, init_std, shape, gen, torch::TensorOptions().dtype(torch::kFloat32));
  };
  // Draws in checkpoint order (embedding, each layer's projections, lm_head), norms are ones.
  std::map<std::string, torch::Tensor> t;
  for (const auto& spec : hf_tensor_specs(c))
    t[spec.name] = spec.is_norm ? torch::ones(spec.shape) : normal(spec.shape);
  return t;
}

std::shared_ptr<LlamaModel> make_random_model(const ModelConfig& config, uint64_t seed, torch::Device device,
                                              torch::ScalarType dtype) {
  return LlamaModel::from_tensors(config, random_llama_tensors(config, seed), device, dtype, "<random>");
}

void save_model_folder(const std::string& dir, const ModelConfig& config,
                       const std::map<std::string, torch::Tensor>& tensors, torch::ScalarType storage_dtype) {
  std::filesystem::create_directories(dir);
  ModelConfig c = config;
  c.torch_dtype = storage_dtype == torch::kBFloat16 ? "bfloat16" : storage_dtype == torch::kFloat16 ? "float16" : "float32";
  write_text_atomic(join_path(dir, "config.json"), c.to_json().dump(2) + "\n");
  std::vector<std::pair<std::string, torch::Tensor>> list;
  for (const auto& [name, tensor] : tensors) list.push_back({name, tensor.to(storage_dtype)});
  save_safetensors(join_path(dir, "model.safetensors"), list);
}

}  // namespace echokv
