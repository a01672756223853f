// echokv-train: `pretrain` trains the testbed model; `echo` trains EchoKV reconstructors (both resumable).
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/parse_errors.h"
#include "cli/common.h"
#include "core/runtime.h"
#include "train/echo_trainer.h"
#include "train/pretrainer.h"

int main(int argc, char** argv) {
  echokv::prepare_process(argc, argv);
  return echokv::run_app("echokv-train", [&]() -> int {
    CLI::App app{"EchoKV-cpp training"};
    app.set_version_flag("--version", [] { return echokv::version_text("echokv-train"); });
    app.require_subcommand(1);
    std::string config_path;
    echokv::PretrainRunOptions run;
    auto* pre = app.add_subcommand("pretrain", "train a model from scratch (resumes from the latest checkpoint)");
    pre->add_option("--config", config_path, "YAML config, e.g. configs/testbed/tb8.yaml")->required();
    pre->add_option("--max-steps", run.max_steps_this_run, "stop after this many steps in this run (checkpointed)");
    pre->add_option("--max-minutes", run.max_seconds_this_run, "stop after this many minutes in this run (checkpointed)")
        ->transform([](std::string v) { return std::to_string(std::stod(v) * 60.0); });
    auto* exp = app.add_subcommand("export", "evaluate the latest checkpoint and write the model folder + card");
    exp->add_option("--config", config_path, "YAML config")->required();
    echokv::EchoRunOptions echo_run;
    auto* echo = app.add_subcommand("echo", "train EchoKV reconstructors, stage 1 (KV-MSE) then stage 2 (O-MSE); resumable");
    echo->add_option("--config", config_path, "YAML config, e.g. configs/echo/stories260k-r0.5.yaml")->required();
    echo->add_option("--max-steps", echo_run.max_steps_this_run, "stop after this many steps in this run (checkpointed)");
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return echokv::report_parse_error("echokv-train", app, e);
    }
    if (echo->parsed()) {
      auto outcome = echokv::run_echo_training(echokv::EchoTrainConfig::load(config_path), echo_run);
      if (outcome.finished)
        std::cerr << "[echo] finished: both stages done" << std::endl;
      else
        std::cerr << "[echo] paused at stage " << outcome.stage << " step " << outcome.step << std::endl;
      return 0;
    }
    auto config = echokv::PretrainConfig::load(config_path);
    if (exp->parsed()) {
      echokv::export_latest_checkpoint(config);
      return 0;
    }
    auto outcome = echokv::run_pretrain(config, run);
    std::cerr << "[pretrain] " << (outcome.finished ? "finished" : "paused") << " at step " << outcome.step << std::endl;
    return 0;
  });
}
