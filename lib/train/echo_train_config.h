// `echokv-train echo` config (YAML, strict). Relative paths from the working directory.
//   model: ../shared/fixtures/reference/stories260K
//   device: cpu   dtype: float32   threads: 0
//   plan: {file: plan.json}  |  {strategy: paper, ratio: 0.5, granularity: 0}
//   data:        # as echokv-analyze's calibration section, plus a validation split
//     source: samples | ids | text    sequences: 64   seq_len: 512   seed: 42 ...
//     validation_sequences: 8
//   reconstructor: {bias: true, init_seed: 42, init: random | least_squares, init_sequences: 16,
//                   init_ridge: 1.0e-4}
//   attention: {sink_tokens: 4, recent_tokens: 128}   # exact tokens in the stage-2 attention
//   stage1: {steps: 600, lr: 5.0e-4}
//   stage2: {steps: 1000, lr: 5.0e-4}
//   optimizer: {weight_decay: 0.0, betas: [0.9, 0.999], eps: 1.0e-8}
//   seed: 42   checkpoint_every: 50   log_every: 10
//   output_dir: runs/echo/stories260k-r0.5
#pragma once
#include <string>

#include "analysis/analyze_config.h"

namespace echokv {

struct EchoStageConfig {
  int64_t steps = 0;
  double lr = 5e-4;
};

struct EchoTrainConfig {
  std::string source;  // the YAML file
  std::string model, device = "cpu", dtype = "float32";
  int threads = 0;
  std::string plan_file;                 // a HeadPlan JSON, or
  std::string plan_strategy = "paper";   // generated when plan_file is empty
  double plan_ratio = 0.5;
  int64_t plan_granularity = 0;          // 0 = head_dim / 2
  CalibrationConfig data;
  int64_t validation_sequences = 8;
  bool bias = true;
  uint64_t init_seed = 42;
  std::string init = "random";          // random (nn.Linear, the paper) | least_squares (closed form)
  int64_t init_sequences = 16;          // least_squares: training sequences used
  double init_ridge = 1e-4;             // least_squares: relative ridge
  int64_t sink_tokens = 4, recent_tokens = 128;
  EchoStageConfig stage1{600, 5e-4}, stage2{1000, 5e-4};
  double weight_decay = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  uint64_t seed = 42;
  int64_t checkpoint_every = 50, log_every = 10;
  std::string output_dir;

  static EchoTrainConfig load(const std::string& path);
  const EchoStageConfig& stage(int s) const { return s == 1 ? stage1 : stage2; }
};

}  // namespace echokv
