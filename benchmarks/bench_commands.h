// Subcommands of echokv-bench; each registers itself on the app.
#pragma once
#include <CLI/CLI.hpp>

namespace echokv {
void register_model_bench(CLI::App& app, int& threads);
void register_tokenizer_bench(CLI::App& app);
void register_train_step_bench(CLI::App& app, int& threads);
void register_echo_train_bench(CLI::App& app, int& threads);
void register_echo_decode_bench(CLI::App& app, int& threads);
void register_kvzip_decode_bench(CLI::App& app, int& threads);
}  // namespace echokv
