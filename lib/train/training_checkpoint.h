// Resumable training checkpoints: <root>/<name>/{weights.safetensors, optimizer.pt,
// state.json}; <root>/latest names the newest complete one and is written last, atomically,
// so a crash at any moment leaves the previous checkpoint usable. Older ones are removed.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace echokv {

void save_training_checkpoint(const std::string& root, const std::string& name,
                              const std::vector<std::pair<std::string, torch::Tensor>>& weights,
                              torch::optim::Optimizer& optimizer, const nlohmann::json& state);

// The newest complete checkpoint's folder, or "" when there is none.
std::string latest_training_checkpoint(const std::string& root);

// Its weights and state (state.json parsed; errors name the file).
std::map<std::string, torch::Tensor> load_training_checkpoint(const std::string& dir, nlohmann::json* state);

// Loads <dir>/optimizer.pt into `optimizer`; an error naming state.json when the checkpoint
// was written by another LibTorch version (state["libtorch"]), whose optimizer layout differs.
void load_optimizer_state(torch::optim::Optimizer& optimizer, const std::string& dir, const nlohmann::json& state);

}  // namespace echokv
