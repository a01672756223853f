// Everything `echokv-train pretrain` needs, parsed from one YAML file.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "model/config.h"
#include "train/corpus.h"
#include "train/retrieval_tasks.h"
#include "train/ruler_training.h"

namespace echokv {

struct CurriculumStage {
  int64_t until_step = 0;                 // this stage covers steps < until_step
  int64_t seq_len = 256;                  // the longest of `lengths`
  // `seq_len: N` or `seq_len: [N1, N2, ...]`: micro-batch m of step s is made at
  // lengths[(s x micro_steps + m) % size] (repeats weight a length), so every length keeps
  // being trained (one length per stage made a model forget the others).
  std::vector<int64_t> lengths = {256};
  std::map<std::string, double> mix;      // task kind -> probability
};

struct PretrainConfig {
  std::string source;                     // the YAML file
  std::string name, work_dir, output_dir;
  uint64_t seed = 1234;
  int threads = 0;
  CorpusOptions corpus;
  int64_t tokenizer_vocab = 4096;
  int64_t tokenizer_sentences = 2000000;
  ModelConfig model;
  double init_std = 0.02;
  // optimisation
  std::string dtype = "float32";
  double lr = 2e-3, min_lr_ratio = 0.1, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, grad_clip = 1.0;
  int64_t warmup_steps = 100, total_steps = 1000, tokens_per_step = 16384, micro_batch_tokens = 4096;
  int64_t checkpoint_every = 50, log_every = 10, eval_every = 250;
  std::vector<CurriculumStage> curriculum;
  TaskOptions tasks;
  // Continue a finished run: its work_dir. A fresh start then takes that run's tokenizer,
  // key words and corpus lock, and its latest weights instead of a random init (the
  // optimizer starts anew). Empty: train from scratch.
  std::string init_from;
  // RULER-format samples (mix kinds "ruler" = a task drawn uniformly, "ruler/<task>").
  bool has_ruler = false;
  RulerTrainingOptions ruler;
  // evaluation
  int64_t eval_heldout_sequences = 32, eval_heldout_seq_len = 512, eval_retrieval_samples = 32;
  std::vector<int64_t> eval_retrieval_lengths = {256, 512, 1024};
  // RULER probe (with a ruler section): held-out samples (evaluation seeds, RULER's own
  // haystack) per task and length, scored by teacher-forced exact match of the answer.
  int64_t eval_ruler_samples = 8;
  std::vector<int64_t> eval_ruler_lengths = {1024};

  const CurriculumStage& stage_at(int64_t step) const;
  static PretrainConfig load(const std::string& path);
};

// Linear warmup, then cosine decay to lr * min_lr_ratio at total_steps.
double learning_rate(const PretrainConfig& c, int64_t step);

}  // namespace echokv
