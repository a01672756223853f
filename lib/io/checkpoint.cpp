#include "io/checkpoint.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"

namespace echokv {

bool is_ignored_tensor(const std::string& name) {
  return name.find("rotary_emb.inv_freq") != std::string::npos;
}

Checkpoint Checkpoint::open(const std::string& dir) {
  namespace fs = std::filesystem;
  Checkpoint ck;
  ck.dir_ = dir;
  if (!fs::is_directory(dir)) fail(dir, "model folder does not exist");
  const std::string index_path = join_path(dir, "model.safetensors.index.json");
  const std::string single_path = join_path(dir, "model.safetensors");

  auto add_file = [&](const std::string& path) -> std::shared_ptr<SafetensorsFile> {
    auto it = ck.files_.find(path);
    if (it != ck.files_.end()) return it->second;
    if (!fs::exists(path)) fail(path, "shard listed in the index does not exist");
    auto f = SafetensorsFile::open(path);
    ck.files_[path] = f;
    return f;
  };

  if (fs::exists(index_path)) {
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(read_text_file(index_path));
    } catch (const nlohmann::json::exception& e) {
      fail(index_path, std::string("not valid JSON: ") + e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail(index_path, "no 'weight_map' object");
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string()) fail(index_path, "weight_map entry '" + it.key() + "' is not a file name");
      if (is_ignored_tensor(it.key())) continue;
      // A shard is a file name inside the model folder (HF writes "model-00001-of-00004.safetensors"):
      // no folders, no "..", no absolute paths reaching elsewhere.
      const std::string shard = it.value().get<std::string>();
      if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos || shard == "." ||
          shard == "..")
        fail(index_path, "weight_map entry '" + it.key() + "' names '" + shard + "', not a file in the model folder");
      const std::string path = join_path(dir, shard);
      auto f = add_file(path);
      if (!f->contains(it.key()))
        fail(path, "index says it holds tensor '" + it.key() + "' but it does not");
      ck.where_[it.key()] = path;
    }
  } else if (fs::exists(single_path)) {
    auto f = add_file(single_path);
    for (const auto& name : f->names())
      if (!is_ignored_tensor(name)) ck.where_[name] = single_path;
  } else {
    fail(dir, "no model.safetensors or model.safetensors.index.json (only safetensors checkpoints are supported)");
  }
  return ck;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

const std::string& Checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail(dir_, "missing tensor '" + name + "'");
  return it->second;
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  return files_.at(file_of(name))->info(name);
}

torch::Tensor Checkpoint::tensor(const std::string& name) const {
  return files_.at(file_of(name))->tensor(name);
}

}  // namespace echokv
