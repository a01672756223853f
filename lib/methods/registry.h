// The method registry: cache kind -> factory. The only place that knows every method's name.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/yaml_config.h"
#include "methods/method.h"

namespace echokv {

using MethodFactory = std::unique_ptr<Method> (*)(MethodOptions& options);

struct RegisteredMethod {
  std::string kind;     // the `cache:` value
  std::string summary;  // one line for --help and errors
  MethodFactory make;
};

const std::vector<RegisteredMethod>& registered_methods();
// "full, echo, low_rank, ... or echo_kvzip" in registry order.
std::string method_kinds_text();
// The registered method of that kind, or null.
const RegisteredMethod* find_method(const std::string& kind);

// A method from a config entry: reads `cache` (default full) and the method's own options
// from `entry`; any other key (except the keys in `harness_keys`, which the caller reads) is an
// error naming the file, `label` and the key. An unknown kind lists the registered ones.
std::unique_ptr<Method> make_method(ConfigNode& entry, const std::string& label);
// The same from YAML text, e.g. "{cache: snapkv, ratio: 0.4, obs_window: 16}" (tests, CLI flags).
std::unique_ptr<Method> make_method_from_yaml(const std::string& yaml, const std::string& where = "<method>");

}  // namespace echokv
