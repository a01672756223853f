// Randomly initialised models (HF init: normal(0, 0.02) weights, unit norms) for tests and
// benchmarks, and a helper to write one as an HF checkpoint folder.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "model/llama.h"

namespace echokv {

std::map<std::string, torch::Tensor> random_llama_tensors(const ModelConfig& config, uint64_t seed,
                                                          double init_std = 0.02);

std::shared_ptr<LlamaModel> make_random_model(const ModelConfig& config, uint64_t seed,
                                              torch::Device device = torch::kCPU,
                                              torch::ScalarType dtype = torch::kFloat32);

// Writes config.json + model.safetensors (in `storage_dtype`) to `dir`.
void save_model_folder(const std::string& dir, const ModelConfig& config,
                       const std::map<std::string, torch::Tensor>& tensors,
                       torch::ScalarType storage_dtype = torch::kFloat32);

}  // namespace echokv
