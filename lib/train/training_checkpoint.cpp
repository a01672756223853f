#include "train/training_checkpoint.h"

#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/torch_compat.h"
#include "io/safetensors.h"

namespace echokv {

namespace fs = std::filesystem;

namespace {
const char* const kPartial = ".partial";
}

// Never deletes what `latest` names: the checkpoint is written whole into NAME.partial, then
// moved into place; when NAME is the checkpoint `latest` names (a stop on a checkpoint step),
// `latest` first names the complete NAME.partial, and latest_training_checkpoint() reads
// NAME.partial's move into NAME as done if a kill lands between the move and the last switch.
void save_training_checkpoint(const std::string& root, const std::string& name,
                              const std::vector<std::pair<std::string, torch::Tensor>>& weights,
                              torch::optim::Optimizer& optimizer, const nlohmann::json& state) {
  const std::string dir = join_path(root, name), partial = dir + kPartial;
  fs::remove_all(partial);  // a stale one from a killed save
  fs::create_directories(partial);
  save_safetensors(join_path(partial, "weights.safetensors"), weights);
  write_file_atomic(join_path(partial, "optimizer.pt"), [&](const std::string& tmp) { torch::save(optimizer, tmp); });
  nlohmann::json stamped = state;
  stamped["libtorch"] = compat::torch_version();  // the optimizer's torch::save layout is this version's
  write_text_atomic(join_path(partial, "state.json"), stamped.dump(2) + "\n");
  const std::string latest = join_path(root, "latest");
  std::string previous;
  if (file_exists(latest)) previous = read_text_file(latest);
  if (fs::exists(dir)) {
    write_text_atomic(latest, name + kPartial);  // the new, complete copy while the old one goes
    fs::remove_all(dir);
  }
  fs::rename(partial, dir);
  write_text_atomic(latest, name);
  // The checkpoint `latest` named before (NAME.partial stands for NAME) goes, unless it is this one.
  const std::string suffix = kPartial;
  if (previous.size() > suffix.size() && previous.compare(previous.size() - suffix.size(), suffix.size(), suffix) == 0)
    previous.resize(previous.size() - suffix.size());
  if (!previous.empty() && previous != name) {
    fs::remove_all(join_path(root, previous));
    fs::remove_all(join_path(root, previous + kPartial));
  }
}

std::string latest_training_checkpoint(const std::string& root) {
  const std::string latest = join_path(root, "latest");
  if (!file_exists(latest)) return "";
  const std::string named = read_text_file(latest), dir = join_path(root, named);
  const std::string suffix = kPartial;
  // A save killed after moving NAME.partial into NAME but before naming NAME again.
  if (!fs::exists(dir) && named.size() > suffix.size() && named.compare(named.size() - suffix.size(), suffix.size(), suffix) == 0)
    return join_path(root, named.substr(0, named.size() - suffix.size()));
  return dir;
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

void load_optimizer_state(torch::optim::Optimizer& optimizer, const std::string& dir, const nlohmann::json& state) {
  // torch::save of an optimizer is not portable across LibTorch versions: 1.13's Adam state
  // loaded by 2.6 lands on the wrong parameters (a shape error at best), so refuse early.
  if (state.contains("libtorch") && state["libtorch"].is_string() && state["libtorch"].get<std::string>() != compat::torch_version())
    fail(join_path(dir, "state.json"), "written by LibTorch " + state["libtorch"].get<std::string>() + ", this is LibTorch " +
                                           compat::torch_version() +
                                           ": the optimizer state does not carry over; resume with that LibTorch "
                                           "(e.g. scripts/debian13.sh for 2.6) or start the run again");
  torch::load(optimizer, join_path(dir, "optimizer.pt"));
}

}  // namespace echokv
