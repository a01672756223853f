// echokv-eval: run models and evaluations. Subcommands: logits, generate, tokenize,
// score, prepare (RULER data as prepare.py writes it), run (= --config FILE: a whole evaluation).
#include <iostream>

#include "cli/parse_errors.h"
#include "echokv_eval/commands.h"
#include "cli/common.h"
#include "core/runtime.h"

int main(int argc, char** argv) {
  echokv::prepare_process(argc, argv);
  return echokv::run_app("echokv-eval", [&]() -> int {
    CLI::App app{"EchoKV-cpp evaluation and inference"};
    app.set_version_flag("--version", [] { return echokv::version_text("echokv-eval"); });
    app.require_subcommand(0, 1);
    std::string config;
    bool score_only = false, quiet = false;
    echokv::EvalOverrides overrides;
    echokv::add_run_options(&app, config, score_only, quiet, overrides);
    const std::vector<echokv::Command> commands = {echokv::add_logits_command(app), echokv::add_generate_command(app),
                                                   echokv::add_tokenize_command(app), echokv::add_score_command(app), echokv::add_prepare_command(app),
                                                   echokv::add_run_command(app)};
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return echokv::report_parse_error("echokv-eval", app, e);
    }
    for (const auto& c : commands)
      if (c.cli->parsed()) return c.run();
    if (!config.empty()) return echokv::run_eval_config(config, score_only, quiet, overrides);
    std::cerr << app.help();
    return 1;
  });
}
