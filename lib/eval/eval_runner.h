// Runs an EvalConfig: generates (once) the benchmark samples, runs every method on every
// sample, appending one JSON line per finished sample to
//   <out_dir>/predictions/<method>/<benchmark>.jsonl
// (so an interrupted run resumes where it stopped), then scores everything into
// <out_dir>/metrics.json and <out_dir>/report.md with SVG figures. Progress with ETA on stderr.
#pragma once
#include "eval/eval_config.h"

namespace echokv {

struct EvalRunOptions {
  bool progress = true;
  bool score_only = false;  // skip inference, re-score what is there
};

void run_evaluation(const EvalConfig& config, const EvalRunOptions& options = {});

}  // namespace echokv
