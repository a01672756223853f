#include <iostream>

#include "core/error.h"
#include "echokv_eval/commands.h"
#include "eval/rescore.h"

namespace echokv {

Command add_score_command(CLI::App& app) {
  struct Opts {
    std::string benchmark, in_path;
    bool by_length = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("score", "re-score a predictions JSONL file (LongBench or RULER format)");
  cmd->add_option("--benchmark", o->benchmark, "longbench | ruler")->required()->check(CLI::IsMember({"longbench", "ruler"}));
  cmd->add_option("--in", o->in_path, "predictions JSONL")->required();
  cmd->add_flag("--e", o->by_length, "LongBench-E: also score by length bucket (0-4k, 4-8k, 8k+)");
  return {cmd, [o]() {
    const auto result = o->benchmark == "longbench" ? rescore_longbench(o->in_path, o->by_length) : rescore_ruler(o->in_path);
    std::cout << result.dump(2) << "\n";
    return 0;
  }};
}

}  // namespace echokv
