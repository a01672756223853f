// Subcommands of echokv-eval. Each adds itself to the app and runs when parsed.
#pragma once
#include <functional>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/common.h"

namespace echokv {

using Runner = std::function<int()>;

struct Command {
  CLI::App* cli;
  Runner run;
};

// Runtime flags shared by commands that load a model.
void add_runtime_flags(CLI::App* cmd, RuntimeFlags& rt);

Command add_logits_command(CLI::App& app);
Command add_generate_command(CLI::App& app);
Command add_tokenize_command(CLI::App& app);

}  // namespace echokv
