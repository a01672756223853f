// Needle-in-a-haystack grid (the paper's Figs. 4-5): an essay haystack sized to each context
// length, one needle sentence inserted at each depth (at a sentence boundary), a question;
// scored by the fraction of the needle's answer key words present in the prediction
// (case-insensitive substrings, like RULER).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/ruler_tasks.h"

namespace echokv {

struct NiahConfig {
  std::string haystack_path;  // PaulGrahamEssays.json ({"text": ...}) or a plain .txt file
  std::vector<int64_t> lengths;
  std::vector<double> depths;  // percent, 0..100
  std::string needle = "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.";
  std::string question = "What is the best thing to do in San Francisco?";
  std::string instruction = " Don't give information outside the document or repeat your findings.";
  std::string answer_prefix = " Here is the most relevant sentence in the text:";
  // Words whose presence is scored; empty = the needle's words that are neither in the
  // question nor stop words (for the default needle: eat sandwich sit dolores park sunny day).
  std::vector<std::string> answer_keywords;
  int64_t tokens_to_generate = 48;
};

struct NiahSample {
  int64_t length = 0;   // target context length
  double depth = 0;     // percent
  std::string input, answer_prefix;
  std::vector<std::string> keywords;
  int64_t prompt_tokens = 0;
  int64_t context_end = -1;  // bytes of input up to the end of the haystack (the question follows); -1 unknown
  nlohmann::json to_json() const;
  static NiahSample from_json(const nlohmann::json& j, const std::string& where);
};

std::vector<std::string> niah_keywords(const NiahConfig& config);
// Fraction of keywords found in the prediction, in [0, 1]: case-insensitive substring tests,
// as RULER's string_match_all scores its needles.
double niah_score(const std::string& prediction, const std::vector<std::string>& keywords);

std::vector<NiahSample> generate_niah(const NiahConfig& config, const PromptTokenCounter& count);

}  // namespace echokv
