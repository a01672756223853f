#include "core/yaml_config.h"

#include <filesystem>

#include "core/files.h"

namespace echokv {

ConfigNode ConfigNode::load_file(const std::string& path) {
  if (!file_exists(path)) fail(path, "config file does not exist");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    fail(path, std::string("malformed YAML: ") + e.what());
  }
  if (!root.IsMap()) fail(path, "top level must be a mapping");
  return ConfigNode(root, path, "");
}

ConfigNode::ConfigNode(YAML::Node node, std::string file, std::string path)
    : node_(std::move(node)), file_(std::move(file)), path_(std::move(path)) {}

bool ConfigNode::has(const std::string& key) const { return node_[key] && !node_[key].IsNull(); }

std::string ConfigNode::resolve(const std::string& value, const YAML::Node& node) const {
  namespace fs = std::filesystem;
  if (value.empty() || fs::path(value).is_absolute()) return value;
  const fs::path base = node.Tag() == "!cwd" ? fs::path() : fs::path(file_).parent_path();
  const std::string out = (base / value).lexically_normal().string();
  return out.empty() ? "." : out;
}

void ConfigNode::tag_working_directory_values(YAML::Node node) {
  if (node.IsSequence() || node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) tag_working_directory_values(node.IsMap() ? it->second : *it);
    return;
  }
  if (!node.IsScalar()) return;
  double number;
  bool flag;
  if (YAML::convert<double>::decode(node, number) || YAML::convert<bool>::decode(node, flag)) return;
  node.SetTag("!cwd");
}

std::string ConfigNode::get_path(const std::string& key, const std::string& fallback) {
  if (!has(key)) return get<std::string>(key, fallback);
  return resolve(get<std::string>(key, fallback), node_[key]);
}

std::string ConfigNode::require_path(const std::string& key) { return resolve(require<std::string>(key), node_[key]); }

std::vector<std::string> ConfigNode::path_list(const std::string& key) {
  auto values = get<std::vector<std::string>>(key, {});
  for (size_t i = 0; i < values.size(); ++i) values[i] = resolve(values[i], node_[key][i]);
  return values;
}

ConfigNode ConfigNode::child(const std::string& key) {
  mark(key);
  if (!node_[key] || !node_[key].IsMap()) fail(file_, "key '" + where(key) + "' must be a mapping");
  return ConfigNode(node_[key], file_, where(key));
}

std::vector<ConfigNode> ConfigNode::list(const std::string& key) {
  mark(key);
  if (!node_[key] || !node_[key].IsSequence()) fail(file_, "key '" + where(key) + "' must be a list");
  std::vector<ConfigNode> out;
  for (size_t i = 0; i < node_[key].size(); ++i) {
    if (!node_[key][i].IsMap()) fail(file_, "key '" + where(key) + "[" + std::to_string(i) + "]' must be a mapping");
    out.emplace_back(node_[key][i], file_, where(key) + "[" + std::to_string(i) + "]");
  }
  return out;
}

std::map<std::string, double> ConfigNode::number_map(const std::string& key) {
  mark(key);
  if (!node_[key] || !node_[key].IsMap()) fail(file_, "key '" + where(key) + "' must be a mapping of numbers");
  std::map<std::string, double> out;
  for (auto it = node_[key].begin(); it != node_[key].end(); ++it) {
    try {
      out[it->first.as<std::string>()] = it->second.as<double>();
    } catch (const YAML::Exception&) {
      fail(file_, "key '" + where(key) + "." + it->first.as<std::string>() + "' must be a number");
    }
  }
  return out;
}

std::vector<std::string> ConfigNode::unread_keys() const {
  std::vector<std::string> out;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    if (!used_.count(key)) out.push_back(key);
  }
  return out;
}

void ConfigNode::finish() const {
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    if (!used_.count(key)) fail(file_, "unknown key '" + where(key) + "'");
  }
}

}  // namespace echokv
