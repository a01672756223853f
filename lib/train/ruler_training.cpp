#include "train/ruler_training.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "eval/py_text.h"
#include "eval/ruler_template.h"

namespace echokv {

std::string ruler_answer_text(const RulerTask& task, const std::vector<std::string>& outputs) {
  if (task.kind == "common_words_extraction") {
    std::string s;
    for (size_t i = 0; i < outputs.size(); ++i) s += " " + std::to_string(i + 1) + ". " + outputs[i];
    return s;
  }
  if (task.kind == "variable_tracking" || task.kind == "freq_words_extraction") return " " + py::join(outputs, " ");
  return " " + py::join(outputs, ", ") + ".";
}

uint64_t ruler_training_seed(uint64_t draw) { return draw | (uint64_t{1} << 63); }

RulerTrainingSampler::RulerTrainingSampler(const Tokenizer& tokenizer, const TaskGenerator& filler,
                                           RulerTrainingOptions options)
    : tokenizer_(tokenizer), filler_(filler), options_(std::move(options)) {
  if (!tokenizer_.bos_id() || !tokenizer_.eos_id()) throw Error("RULER training samples need a tokenizer with BOS and EOS");
  if (!(options_.essay_train_begin > 0.0 && options_.essay_train_begin < 1.0))
    throw Error("ruler.essay_train_begin must lie in (0, 1), got " + std::to_string(options_.essay_train_begin));
  data_ = std::make_unique<RulerData>(options_.data_dir);
  (void)ruler_model_template(options_.model_template);  // an unknown name fails here
  if (options_.tasks.empty()) {
    for (const auto& name : data_->task_names())
      if (data_->task(name).kind != "qa") tasks_.push_back(name);
  } else {
    for (const auto& name : options_.tasks) {
      (void)data_->task(name);  // unknown names fail with the task list
      if (const auto why = data_->unavailable_reason(name); !why.empty())
        throw Error("ruler.tasks: " + name + " cannot be generated: " + why);
      tasks_.push_back(name);
    }
  }
  if (tasks_.empty()) throw Error("ruler training: no tasks");
  essay_begin_ = static_cast<int64_t>(std::floor(options_.essay_train_begin * static_cast<double>(data_->essay_word_count())));
}

RulerTrainingSampler::~RulerTrainingSampler() = default;

RulerSample RulerTrainingSampler::generate(const std::string& task, int64_t length, uint64_t seed,
                                           int64_t essay_range_begin, int64_t essay_offset) const {
  RulerGenerateOptions o;
  o.model_template = options_.model_template;
  o.essay_range_begin_words = essay_range_begin;
  o.essay_offset_words = essay_offset;
  const RulerTokenCounter count = [this](const std::string& text) {
    return static_cast<int64_t>(encode_with_control_text(tokenizer_, text).size());
  };
  return data_->generate(task, length, 1, seed, count, o).at(0);
}

std::pair<std::vector<int64_t>, int64_t> RulerTrainingSampler::encode(const RulerSample& sample) const {
  const std::string prompt = sample.input + sample.answer_prefix;
  const auto prompt_ids = ruler_prompt_ids(tokenizer_, prompt);  // what the evaluation feeds
  auto ids = ruler_prompt_ids(tokenizer_, prompt + ruler_answer_text(data_->task(sample.task), sample.outputs));
  // The answer is what the one-string tokenization adds after the prompt's common prefix.
  int64_t answer_begin = 0;
  while (answer_begin < static_cast<int64_t>(std::min(ids.size(), prompt_ids.size())) &&
         ids[static_cast<size_t>(answer_begin)] == prompt_ids[static_cast<size_t>(answer_begin)])
    ++answer_begin;
  ids.push_back(*tokenizer_.eos_id());
  return {std::move(ids), answer_begin};
}

TaskSample RulerTrainingSampler::make(const std::string& task, std::mt19937_64& rng, int64_t length) const {
  std::string name = task;
  if (name.empty()) name = tasks_[std::uniform_int_distribution<size_t>(0, tasks_.size() - 1)(rng)];
  const uint64_t seed = ruler_training_seed(rng());
  const int64_t words = data_->essay_word_count();
  const int64_t offset = std::uniform_int_distribution<int64_t>(essay_begin_, words - 1)(rng);
  const RulerSample sample = generate(name, length, seed, essay_begin_, offset);
  auto [ids, answer_begin] = encode(sample);
  const auto n = static_cast<int64_t>(ids.size());
  if (n > length)
    throw Error("RULER training sample " + name + " at " + std::to_string(length) + " tokens: prompt and answer take " +
                std::to_string(n) + " (the answer outgrew tokens_to_generate)");
  TaskSample s;
  s.tokens = std::move(ids);
  s.weights.assign(s.tokens.size(), options_.prompt_weight);
  s.weights[0] = 0.0f;
  for (int64_t i = answer_begin; i < n; ++i) {
    s.weights[static_cast<size_t>(i)] = options_.answer_weight;
    if (i + 1 < n) s.answer_positions.push_back(i);  // EOS is weighted, not scored as answer text
  }
  if (n < length) {  // corpus text to the length (BOS first; its weights as the text task gives them)
    const TaskSample fill = filler_.text(rng, length - n);
    s.tokens.insert(s.tokens.end(), fill.tokens.begin(), fill.tokens.end());
    s.weights.insert(s.weights.end(), fill.weights.begin(), fill.weights.end());
    s.weights[static_cast<size_t>(n)] = 0.0f;  // predicting the filler's BOS
  }
  return s;
}

}  // namespace echokv
