// Turns collected KV statistics into the analysis outputs of `echokv-analyze`:
//   metrics.json     every metric, plan scores, the paper's layouts for S = 2 and 4
//   plans/*.json     the paper and similarity plans at each target ratio
//   plan.json        the similarity plan at the primary ratio
//   figures/*.svg    head-similarity heat maps, inter-layer R^2 matrix, per-layer predicted
//                    R^2 of paper vs similarity plans, score vs ratio
//   report.md        the human summary linking the figures
#pragma once
#include <string>

#include "analysis/analyze_config.h"
#include "analysis/kv_statistics.h"
#include "model/config.h"

namespace echokv {

struct AnalysisContext {
  std::string model_path;
  std::string calibration;   // human description of the calibration data
  double collect_seconds = 0;
  std::string command;       // the command line that produced the report
};

void write_analysis_outputs(const AnalyzeConfig& config, const ModelConfig& model, const KVStatistics& stats,
                            const AnalysisContext& context, const std::string& out_dir);

}  // namespace echokv
