// Scores an evaluation folder's predictions and writes metrics.json and report.md (tables
// method x task, NIAH heat maps, score vs stored-bytes ratio plots as SVG).
#pragma once
#include <nlohmann/json.hpp>

#include "eval/eval_config.h"

namespace echokv {

nlohmann::json score_evaluation(const EvalConfig& config);
void write_eval_report(const EvalConfig& config);

}  // namespace echokv
