#include "echokv_eval/commands.h"

#include <set>

#include "core/error.h"
#include "methods/registry.h"

namespace echokv {

void add_runtime_flags(CLI::App* cmd, RuntimeFlags& rt) {
  cmd->add_option("--device", rt.device, "cpu | cuda | cuda:N")->capture_default_str();
  cmd->add_option("--dtype", rt.dtype, "compute dtype: float32 | bfloat16 | float16 (GPU)")->capture_default_str();
  cmd->add_option("--threads", rt.threads, "CPU threads (0 = ECHOKV_THREADS or all cores)");
}

void add_cache_flags(CLI::App* cmd, CacheFlags& f) {
  cmd->add_option("--cache", f.kind, "KV cache method: " + method_kinds_text())->capture_default_str();
  auto option = [&](const std::string& flag, const std::string& key, const std::string& help) {
    f.options.emplace_back(key, cmd->add_option(flag, f.values[key], help));
  };
  option("--echo", "echo_dir", "echo: trained EchoKV folder (echokv-train echo)");
  option("--sink", "sink_tokens", "echo / streaming: uncompressed first tokens");
  option("--recent", "recent_tokens", "echo: uncompressed recent tokens");
  option("--echo-chunk", "chunk_tokens", "echo / low_rank: tokens rebuilt per attention block");
  option("--ratio", "ratio", "fraction of the full cache's bytes kept (low_rank, streaming, ...)");
  option("--rank-ratio", "ratio", "low_rank: the same as --ratio");
  option("--window", "window", "streaming: recent tokens kept (with --sink)");
  option("--group-heads", "group_heads", "low_rank: KV heads per SVD group (0 = whole layer)");
  cmd->add_option("--set", f.settings, "a method option key=value (repeatable)");
}

std::unique_ptr<Method> online_method(const CacheFlags& f, LlamaModel& model, const std::string& model_dir) {
  if (!find_method(f.kind)) throw Error("--cache must be " + method_kinds_text() + " (got '" + f.kind + "')");
  YAML::Node node;
  node["cache"] = f.kind;
  std::set<std::string> given;
  for (const auto& [key, opt] : f.options) {
    if (opt->count() == 0) continue;
    if (!given.insert(key).second) throw Error(opt->get_name() + ": option '" + key + "' given twice");
    node[key] = YAML::Load(f.values.at(key));
  }
  for (const auto& kv : f.settings) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw Error("--set " + kv + ": expected key=value");
    const std::string key = kv.substr(0, eq);
    if (!given.insert(key).second) throw Error("--set " + kv + ": option '" + key + "' given twice");
    node[key] = YAML::Load(kv.substr(eq + 1));
  }
  ConfigNode entry(node, "command line", "");
  auto method = make_method(entry, "--cache " + f.kind);
  if (method->scores_prompt())
    throw Error("--cache " + f.kind + " scores a prompt's context before compressing it; run it from an eval config " +
                "(echokv-eval --config FILE with a method 'cache: " + f.kind + "')");
  MethodContext context;
  context.model = &model;
  context.model_dir = model_dir;
  method->prepare(context);
  return method;
}

}  // namespace echokv
