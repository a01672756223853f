// LongBench v1 prediction inputs (pred.py): the dataset's prompt filled from the record,
// middle truncation by tokens to max_length (first and last max_length/2 tokens, each half
// decoded without special tokens), the chat template except for trec, triviaqa, samsum,
// lsht, lcc and repobench-p, the dataset's max new tokens, and for samsum "\n" as an extra
// stop and at least one new token (no stop id first).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/prepared_prompt.h"
#include "eval/prompt_split.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace echokv {

struct LongBenchPrompts {
  std::map<std::string, std::string> prompt;  // dataset2prompt.json
  std::map<std::string, int64_t> max_new;     // dataset2maxlen.json
  static LongBenchPrompts load(const std::string& config_dir);
};

bool longbench_uses_chat(const std::string& dataset);

struct LongBenchInput {
  std::vector<int64_t> ids;
  int64_t max_new_tokens = 0;
  std::vector<int64_t> extra_stop_ids;  // samsum: the id of "\n"
  int64_t min_new_tokens = 0;           // samsum: 1 (pred.py's min_length = context_length + 1)
  PromptSpan span;  // the context's tokens (end -1 when truncation cut into the question)
};

// Fills `{context}`, `{input}` (any field of the record) like str.format(**record).
std::string fill_longbench_prompt(const std::string& tmpl, const nlohmann::json& record, const std::string& where);

// longbench_form: pred.py's build_chat instead of the HF template — Llama 2's
// "[INST]{prompt}[/INST]" tokenized as text with BOS; the prompt alone for a model pred.py
// has no form for (Llama 3, Mistral).
LongBenchInput build_longbench_input(const LongBenchPrompts& prompts, const std::string& dataset,
                                     const nlohmann::json& record, const Tokenizer& tokenizer,
                                     const ChatOptions& chat, int64_t max_length, const std::string& where,
                                     bool longbench_form = false);

}  // namespace echokv
