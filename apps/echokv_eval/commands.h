// Subcommands of echokv-eval. Each adds itself to the app and runs when parsed.
#pragma once
#include <functional>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/common.h"
#include "echo/cache_selection.h"

namespace echokv {

using Runner = std::function<int()>;

struct Command {
  CLI::App* cli;
  Runner run;
};

// Runtime flags shared by commands that load a model.
void add_runtime_flags(CLI::App* cmd, RuntimeFlags& rt);

// --cache full|echo|low_rank, --echo DIR, --sink, --recent, --echo-chunk, --rank-ratio, --group-heads, --window.
struct CacheFlags {
  std::string kind = "full", echo_dir;
  EchoCacheOptions echo;
  LowRankOptions low_rank;
  StreamingOptions streaming;
};
void add_cache_flags(CLI::App* cmd, CacheFlags& flags);
// generate / logits run a cache token by token: methods that score a prompt's context first
// (kvzip, snapkv, think) are refused with a pointer to eval configs.
void require_online_cache(const CacheFlags& flags);

Command add_logits_command(CLI::App& app);
Command add_generate_command(CLI::App& app);
Command add_tokenize_command(CLI::App& app);
Command add_score_command(CLI::App& app);
Command add_prepare_command(CLI::App& app);
Command add_run_command(CLI::App& app);
// Top-level `echokv-eval --config FILE` runs the evaluation like `run`.
void add_run_options(CLI::App* cmd, std::string& config, bool& score_only, bool& quiet);
int run_eval_config(const std::string& config, bool score_only, bool quiet);

}  // namespace echokv
