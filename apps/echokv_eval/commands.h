// Subcommands of echokv-eval. Each adds itself to the app and runs when parsed.
#pragma once
#include <functional>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/common.h"
#include "eval/eval_config.h"
#include "methods/method.h"
#include "model/llama.h"

namespace echokv {

using Runner = std::function<int()>;

struct Command {
  CLI::App* cli;
  Runner run;
};

// Runtime flags shared by commands that load a model.
void add_runtime_flags(CLI::App* cmd, RuntimeFlags& rt);

// --cache KIND and its options, for commands that run a cache token by token: each flag is a
// method option (--echo = echo_dir, --sink = sink_tokens, --recent = recent_tokens,
// --echo-chunk = chunk_tokens, --ratio / --rank-ratio = ratio, --window, --group-heads) and
// --set key=value gives any other; the method rejects the options it does not have.
struct CacheFlags {
  std::string kind = "full";
  std::vector<std::pair<std::string, CLI::Option*>> options;  // method key -> flag (only given flags count)
  std::map<std::string, std::string> values;                  // method key -> value as typed
  std::vector<std::string> settings;                          // --set key=value
};
void add_cache_flags(CLI::App* cmd, CacheFlags& flags);
// The method the flags describe, prepared for `model` (model_dir: its folder, for the
// reconstructors' fingerprint check). Methods that score a prompt's context first (kvzip,
// snapkv, think, ...) are refused with a pointer to eval configs.
std::unique_ptr<Method> online_method(const CacheFlags& flags, LlamaModel& model, const std::string& model_dir);

Command add_logits_command(CLI::App& app);
Command add_generate_command(CLI::App& app);
Command add_tokenize_command(CLI::App& app);
Command add_score_command(CLI::App& app);
Command add_prepare_command(CLI::App& app);
Command add_run_command(CLI::App& app);
// Top-level `echokv-eval --config FILE` runs the evaluation like `run`.
void add_run_options(CLI::App* cmd, std::string& config, bool& score_only, bool& quiet, EvalOverrides& overrides);
int run_eval_config(const std::string& config, bool score_only, bool quiet, const EvalOverrides& overrides);

}  // namespace echokv
