// RULER's 13 synthetic tasks (NVIDIA/RULER scripts/data/synthetic), generated from the
// official task configs (synthetic.yaml), prompt templates (templates.json), essay haystack
// and word lists, all read from a data folder. Haystacks are sized to a target length by
// binary search with the caller's token counter (the model's tokenizer and chat wrapper).
// Deterministic for a seed; the random stream is this project's, not CPython's.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace echokv {

struct RulerTask {
  std::string name;  // e.g. "niah_multikey_2"
  std::string kind;  // niah | variable_tracking | common_words_extraction | freq_words_extraction | qa
  std::map<std::string, std::string> args;  // synthetic.yaml's args, as text
  std::string template_text, answer_prefix;
  int64_t tokens_to_generate = 0;
  std::string arg(const std::string& key) const;
  int64_t int_arg(const std::string& key) const;
};

struct RulerSample {
  std::string task;
  int64_t index = 0;
  std::string input;          // the user message: filled template (few-shot example included)
  std::string answer_prefix;  // appended after the chat wrapper, before generation
  std::vector<std::string> outputs;
  int64_t length = 0;         // prompt tokens + tokens_to_generate, as RULER records it
  int64_t max_length = 0;     // the target
  int64_t tokens_to_generate = 0;
  int64_t context_end = -1;   // bytes of input up to the end of the context (the question follows); -1 unknown
  nlohmann::json to_json() const;  // RULER format: index, input, answer_prefix, outputs, length, ...
  static RulerSample from_json(const nlohmann::json& j, const std::string& where);
};

// Counts prompt tokens for (user message, answer prefix) as the model will see them.
using PromptTokenCounter = std::function<int64_t(const std::string& input, const std::string& answer_prefix)>;

class RulerData {
 public:
  // data_dir holds synthetic.yaml, templates.json, PaulGrahamEssays.json and the word lists.
  // squad_path / hotpotqa_path: SQuAD v2 dev and HotpotQA dev (distractor) JSON; qa_1 / qa_2
  // are unavailable without them.
  explicit RulerData(const std::string& data_dir, std::string squad_path = "", std::string hotpotqa_path = "");
  ~RulerData();
  const std::vector<std::string>& task_names() const { return task_names_; }
  const RulerTask& task(const std::string& name) const;
  // Empty when the task can run; otherwise why not (e.g. "SQuAD path not given").
  std::string unavailable_reason(const std::string& name) const;

  std::vector<RulerSample> generate(const std::string& task, int64_t max_length, int64_t num_samples, uint64_t seed,
                                    const PromptTokenCounter& count) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::vector<std::string> task_names_;
  std::map<std::string, RulerTask> tasks_;
};

}  // namespace echokv
