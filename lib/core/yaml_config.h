// Strict YAML config reading: every key must be known, every error names the file, the key
// path and what was expected. Paths in a config (get_path / require_path / path_list) resolve
// relative to the config file's folder, so a config runs from any working directory; a value
// tagged !cwd (what command-line overrides set) resolves against the working directory.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "core/error.h"

namespace echokv {

class ConfigNode {
 public:
  static ConfigNode load_file(const std::string& path);
  ConfigNode(YAML::Node node, std::string file, std::string path);

  bool has(const std::string& key) const;
  template <typename T>
  T get(const std::string& key, const T& fallback) {
    mark(key);
    if (!node_[key] || node_[key].IsNull()) return fallback;
    return convert<T>(key);
  }
  template <typename T>
  T require(const std::string& key) {
    mark(key);
    if (!node_[key] || node_[key].IsNull()) fail(file_, "missing required key '" + where(key) + "'");
    return convert<T>(key);
  }
  // A path: relative values joined to the config file's folder (or the working directory for
  // !cwd values), lexically normalised; absolute ones as they are; the fallback as it is.
  std::string get_path(const std::string& key, const std::string& fallback);
  std::string require_path(const std::string& key);
  std::vector<std::string> path_list(const std::string& key);  // optional list of paths ([] if absent)
  // Tags every string scalar in `node` !cwd: values typed on a command line, whose relative
  // paths mean the working directory.
  static void tag_working_directory_values(YAML::Node node);
  ConfigNode child(const std::string& key);          // a required mapping
  std::vector<ConfigNode> list(const std::string& key);  // a required sequence of mappings
  std::map<std::string, double> number_map(const std::string& key);
  // Errors on any key of this mapping never read.
  void finish() const;
  // Keys of this mapping never read, in file order.
  std::vector<std::string> unread_keys() const;
  // Every key read so far (asked for, present or not), sorted.
  const std::set<std::string>& read_keys() const { return used_; }
  const YAML::Node& yaml() const { return node_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return file_; }
  std::string where(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

 private:
  void mark(const std::string& key) { used_.insert(key); }
  std::string resolve(const std::string& value, const YAML::Node& node) const;
  template <typename T>
  T convert(const std::string& key) {
    try {
      return node_[key].as<T>();
    } catch (const YAML::Exception&) {
      fail(file_, "key '" + where(key) + "' has the wrong type (value: " + YAML::Dump(node_[key]) + ")");
    }
  }
  YAML::Node node_;
  std::string file_, path_;
  std::set<std::string> used_;
};

}  // namespace echokv
