#include "echokv_eval/commands.h"
#include "eval/eval_config.h"
#include "eval/eval_runner.h"

namespace echokv {

void add_run_options(CLI::App* cmd, std::string& config, bool& score_only, bool& quiet, EvalOverrides& overrides) {
  cmd->add_option("--config", config, "evaluation YAML (configs/eval/...)");
  cmd->add_option("--method", overrides.methods, "run only this method entry (repeatable; names after ratio lists expand)");
  cmd->add_option("--ratio", overrides.ratio, "set every kept method's ratio (bytes kept); entries are named NAME@R");
  cmd->add_option("--set", overrides.settings, "KEY.PATH=VALUE in the config (methods.KEY=VALUE: every kept method); repeatable");
  cmd->add_option("--fraction", overrides.fraction, "run the first fraction (0, 1] of each benchmark's samples");
  cmd->add_flag("--score-only", score_only, "do not run models; re-score the predictions already written");
  cmd->add_flag("--quiet", quiet, "no progress lines");
}

int run_eval_config(const std::string& config, bool score_only, bool quiet, const EvalOverrides& overrides) {
  const auto c = EvalConfig::load(config, overrides);
  EvalRunOptions o;
  o.progress = !quiet;
  o.score_only = score_only;
  run_evaluation(c, o);
  return 0;
}

Command add_run_command(CLI::App& app) {
  struct Opts {
    std::string config;
    bool score_only = false, quiet = false;
    EvalOverrides overrides;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("run", "run an evaluation config (same as echokv-eval --config FILE)");
  add_run_options(cmd, o->config, o->score_only, o->quiet, o->overrides);
  cmd->get_option("--config")->required();
  return {cmd, [o]() { return run_eval_config(o->config, o->score_only, o->quiet, o->overrides); }};
}

}  // namespace echokv
