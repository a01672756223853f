// RULER's 13 synthetic tasks (NVIDIA/RULER scripts/data/synthetic), generated from the
// official task configs (synthetic.yaml), prompt templates (templates.json), essay haystack
// and word lists, all read from a data folder. Haystacks are sized to a target length by
// binary search with the caller's token counter (the model's tokenizer and chat wrapper).
// Deterministic for a seed; the random stream is this project's, not CPython's. Each task
// follows its official script: the prompt is RULER's model template (as text) around the
// task template, followed by the answer prefix; sizing (probe, search bounds, step) as the
// script does it, so prompts land where RULER's land, below the target and close to it.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace echokv {

// A word list (wonderwords' nounlist.txt, ...): one word per line, stripped, first
// occurrence kept; an empty list is an error naming the file.
std::vector<std::string> read_word_list(const std::string& path);

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
  int64_t context_begin = 0;  // bytes of input before the context (the model template's head)
  int64_t context_end = -1;   // bytes of input up to the end of the context (the question follows); -1 unknown
  std::string model_template = "base";  // RULER's template.py name the input is wrapped in
  nlohmann::json to_json() const;  // RULER format: index, input, answer_prefix, outputs, length, ...
  static RulerSample from_json(const nlohmann::json& j, const std::string& where);
};

// Counts prompt tokens for (user message, answer prefix) as the model will see them (NIAH).
using PromptTokenCounter = std::function<int64_t(const std::string& input, const std::string& answer_prefix)>;
// Tokens of a RULER prompt text (input + answer prefix, model template markup included) as
// RULER counts them: text_to_tokens, control-token strings read as control tokens, no BOS.
using RulerTokenCounter = std::function<int64_t(const std::string& text)>;

struct RulerGenerateOptions {
  std::string model_template = "base";  // RULER's template.py name (ruler_template.h)
  // qa: RULER shuffles every sample's documents with the same permutation (random.Random(seed)
  // per document count), so the gold paragraph sits at the same slot at a given length; true
  // draws each sample's order from its own stream instead.
  bool per_sample_document_order = false;
  // Essay haystacks (niah tasks with type_haystack essay): RULER reads the essays' words from
  // the first on, wrapping around. Training data uses another part of the essays: words are
  // read from essay_offset_words on and wrap within [essay_range_begin_words, end), so a
  // haystack never reaches the words before essay_range_begin_words (what evaluation reads).
  // Both 0: RULER's own behaviour.
  int64_t essay_range_begin_words = 0;
  int64_t essay_offset_words = 0;
};

class RulerData {
 public:
  // data_dir holds synthetic.yaml, templates.json, PaulGrahamEssays.json and the word lists.
  // squad_path / hotpotqa_path: SQuAD v2 dev and HotpotQA dev (distractor) JSON; qa_1 / qa_2
  // are unavailable without them. cwe at long targets needs more distinct words than the
  // word lists hold; RULER then draws from its json/english_words.json, read from data_dir
  // when present (not shipped), else such a target is an error that says so.
  explicit RulerData(const std::string& data_dir, std::string squad_path = "", std::string hotpotqa_path = "");
  ~RulerData();
  const std::vector<std::string>& task_names() const { return task_names_; }
  // Words of the essay haystack (after RULER's whitespace normalisation).
  int64_t essay_word_count() const;
  const RulerTask& task(const std::string& name) const;
  // Empty when the task can run; otherwise why not (e.g. "SQuAD path not given").
  std::string unavailable_reason(const std::string& name) const;

  std::vector<RulerSample> generate(const std::string& task, int64_t max_length, int64_t num_samples, uint64_t seed,
                                    const RulerTokenCounter& count, const RulerGenerateOptions& options = {}) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::vector<std::string> task_names_;
  std::map<std::string, RulerTask> tasks_;
};

}  // namespace echokv
