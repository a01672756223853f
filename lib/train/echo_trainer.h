// EchoKV's two-stage reconstructor training with the base model frozen (paper Sec. 3.3):
// stage 1 KV-MSE, then stage 2 attention-output MSE starting from stage 1's weights; AdamW
// with cosine decay and no warmup, batch 1. Resumable: checkpoints in
// <output_dir>/checkpoints (weights, optimizer, stage, step) every checkpoint_every steps;
// the data order is a function of the seed and the step, so a resumed run equals an
// uninterrupted one bit for bit. Validation (KV-MSE and O-MSE per layer) runs before
// training for the baselines (zeros, copy of the global layer) and after each stage.
// Outputs: the trained folder (Reconstructor::save), metrics.jsonl, validation.json,
// summary.md.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "echo/reconstructor.h"
#include "model/llama.h"
#include "train/echo_train_config.h"

namespace echokv {

struct EchoRunOptions {
  int64_t max_steps_this_run = -1;  // stop (checkpointed) after this many steps; -1 = no limit
  bool progress = true;
};

struct EchoRunOutcome {
  bool finished = false;
  int stage = 1;
  int64_t step = 0;  // within the stage
  nlohmann::json validation;  // {"baseline_zeros": ..., "baseline_copy": ..., "stage1": ..., "stage2": ...}
};

// The config's plan: its file (checked against the model's shape) or the paper layout.
HeadPlan echo_plan_for(const EchoTrainConfig& config, const ModelConfig& model);

// One optimisation step of `stage` (1: KV-MSE, 2: O-MSE) on one sequence; returns the loss
// (sum over layers). Gradients reach only the reconstructors.
double echo_train_step(LlamaModel& model, const Reconstructor& recon, torch::optim::Optimizer& optimizer, int stage,
                       const std::vector<int64_t>& ids, const EchoTrainConfig& config);

EchoRunOutcome run_echo_training(const EchoTrainConfig& config, const EchoRunOptions& options = {});

}  // namespace echokv
