#include "train/training_checkpoint.h"

#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "io/safetensors.h"

namespace echokv {

namespace fs = std::filesystem;

void save_training_checkpoint(const std::string& root, const std::string& name,
                              const std::vector<std::pair<std::string, torch::Tensor>>& weights,
                              torch::optim::Optimizer& optimizer, const nlohmann::json& state) {
  const std::string dir = join_path(root, name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  save_safetensors(join_path(dir, "weights.safetensors"), weights);
  write_file_atomic(join_path(dir, "optimizer.pt"), [&](const std::string& tmp) { torch::save(optimizer, tmp); });
  write_text_atomic(join_path(dir, "state.json"), state.dump(2) + "\n");
  const std::string latest = join_path(root, "latest");
  std::string previous;
  if (file_exists(latest)) previous = read_text_file(latest);
  write_text_atomic(latest, name);
  if (!previous.empty() && previous != name) fs::remove_all(join_path(root, previous));
}

std::string latest_training_checkpoint(const std::string& root) {
  const std::string latest = join_path(root, "latest");
  if (!file_exists(latest)) return "";
  return join_path(root, read_text_file(latest));
}

std::map<std::string, torch::Tensor> load_training_checkpoint(const std::string& dir, nlohmann::json* state) {
  auto weights = load_safetensors(join_path(dir, "weights.safetensors"));
  if (state) {
    try {
      *state = nlohmann::json::parse(read_text_file(join_path(dir, "state.json")));
    } catch (const nlohmann::json::exception& e) {
      fail(join_path(dir, "state.json"), std::string("not valid JSON: ") + e.what());
    }
  }
  return weights;
}

}  // namespace echokv
