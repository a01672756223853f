// RULER-format training samples for the testbed model (what it is evaluated on), made by the
// project's own RULER generator (eval/ruler_tasks.h) so the prompts are exactly RULER's:
//   - training seeds only: every seed has its top bit set; evaluation seeds (the eval
//     config's seed and small offsets) never do, so no evaluation sample is ever generated;
//   - essay haystacks from the training part of the essays only: words from
//     `essay_train_begin` (a fraction) on, a random offset per sample, wrapping inside that
//     part. RULER's evaluation haystack is the essays' first words (niah.py reads them from
//     the start), so held-out text and training text never meet at the lengths trained.
// A sample is BOS + the RULER prompt (model template, task template, answer prefix: what the
// evaluation feeds) + the answer in the form the task's own examples show + EOS, then corpus
// text to the requested length. Loss weights: prompt tokens `prompt_weight`, answer and EOS
// `answer_weight`, filling text 1.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "eval/ruler_tasks.h"
#include "tokenizer/tokenizer.h"
#include "train/retrieval_tasks.h"

namespace echokv {

struct RulerTrainingOptions {
  std::string data_dir;                 // RULER's data folder (synthetic.yaml, templates, essays, word lists)
  std::vector<std::string> tasks;       // empty: every task except qa (SQuAD / HotpotQA are not here)
  std::string model_template = "base";  // RULER's template.py name
  double essay_train_begin = 0.5;       // fraction of the essays' words where the training part starts
  float prompt_weight = 0.1f;
  float answer_weight = 5.0f;
};

// The answer text a task's examples show after the answer prefix (cwe: " 1. w 2. w ...",
// as its few-shot example; vt and fwe: " a b c", as vt's ICL example; niah: " v1, v2.").
std::string ruler_answer_text(const RulerTask& task, const std::vector<std::string>& outputs);

// The training seed for a draw: top bit set (evaluation seeds never have it).
uint64_t ruler_training_seed(uint64_t draw);

class RulerTrainingSampler {
 public:
  // filler: makes the corpus text that pads a sample to its length (its text()).
  RulerTrainingSampler(const Tokenizer& tokenizer, const TaskGenerator& filler, RulerTrainingOptions options);
  ~RulerTrainingSampler();

  const std::vector<std::string>& tasks() const { return tasks_; }
  // First essay word training haystacks may use.
  int64_t essay_train_begin_words() const { return essay_begin_; }
  const RulerData& data() const { return *data_; }

  // A sample of exactly `length` tokens; task "" draws one of tasks() uniformly. The RULER
  // prompt is sized for `length` as RULER sizes it (prompt + tokens_to_generate <= length).
  TaskSample make(const std::string& task, std::mt19937_64& rng, int64_t length) const;
  // The RULER sample behind make() (for tests and evaluation probes): generated with `seed`
  // at target `length`, essay haystack from `essay_offset` (0 with begin 0: RULER's own).
  RulerSample generate(const std::string& task, int64_t length, uint64_t seed, int64_t essay_range_begin,
                       int64_t essay_offset) const;
  // BOS + prompt + answer + EOS as token ids, with the index where the answer starts.
  std::pair<std::vector<int64_t>, int64_t> encode(const RulerSample& sample) const;

 private:
  const Tokenizer& tokenizer_;
  const TaskGenerator& filler_;
  RulerTrainingOptions options_;
  std::unique_ptr<RulerData> data_;
  std::vector<std::string> tasks_;
  int64_t essay_begin_ = 0;
};

}  // namespace echokv
