// `echokv-train pretrain`: trains the testbed model from a PretrainConfig. AdamW with warmup
// + cosine, gradient clipping and accumulation, float32 or bfloat16 compute over float32
// master weights, a sequence-length curriculum over a task mix, resumable atomic
// checkpoints (weights, optimizer, step; data is a pure function of (seed, step)), JSONL
// metrics, periodic held-out loss and retrieval accuracy, and export to an HF folder.
#pragma once
#include <nlohmann/json.hpp>

#include "model/llama.h"
#include "train/pretrain_config.h"
#include "train/pretrain_data.h"
#include "train/retrieval_tasks.h"
#include "train/ruler_training.h"

namespace echokv {

struct PretrainRunOptions {
  int64_t max_steps_this_run = -1;    // stop (after a checkpoint) when this many steps ran; -1 = no limit
  double max_seconds_this_run = -1;   // same, by wall time
  bool export_when_done = true;
};

struct PretrainOutcome {
  int64_t step = 0;                   // steps completed in total
  bool finished = false;              // reached total_steps
  nlohmann::json last_eval;
};

PretrainOutcome run_pretrain(const PretrainConfig& config, const PretrainRunOptions& options = {});

// Held-out loss and perplexity over the first n_seq fixed held-out sequences (a pure function
// of the config's seed and the held-out split): {"heldout_loss", "heldout_ppl", "heldout_tokens"}.
nlohmann::json heldout_perplexity(const LlamaModel& model, const PretrainConfig& config, const PretrainData& data,
                                  int64_t n_seq);

// Held-out perplexity and retrieval exact-match accuracy of `model`.
// With `ruler`, also the RULER probe (config.eval_ruler_*): "ruler": {task: {length: exact}},
// "ruler_average": {length: mean over tasks}, "ruler_samples": per task and length.
nlohmann::json evaluate_pretrained(const LlamaModel& model, const PretrainConfig& config, const PretrainData& data,
                                   bool full = true, const RulerTrainingSampler* ruler = nullptr);

// A fresh run that continues `config.init_from`: copies that run's tokenizer, key words and
// corpus lock into config.work_dir (where absent) so prepare_pretrain_data reuses them.
void adopt_init_run(const PretrainConfig& config);
// That run's latest weights, checked against config.model's shapes.
std::map<std::string, torch::Tensor> load_init_weights(const PretrainConfig& config);

// Writes config.json, model.safetensors, tokenizer.model and README.md into output_dir.
void export_pretrained(const PretrainConfig& config, const PretrainData& data,
                       const std::map<std::string, torch::Tensor>& weights, const nlohmann::json& eval,
                       const nlohmann::json& training_summary);

// Evaluates the latest checkpoint fully and exports it (card included), without training.
void export_latest_checkpoint(const PretrainConfig& config);

// Loads the latest checkpoint's weights ({} if none) and its state.json.
std::map<std::string, torch::Tensor> load_latest_checkpoint(const std::string& work_dir, nlohmann::json* state);

}  // namespace echokv
