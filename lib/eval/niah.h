// Needle-in-a-haystack grid (the paper's Figs. 4-5): the essay haystack sized to each
// context length, a needle at each depth, a question; several samples per cell (haystack
// windows at different offsets, RULER: new keys and values). The standard setups, by name:
//   kamradt : gkamradt/LLMTest_NeedleInAHaystack — his needle, question, system prompt and
//             <context> tags (Anthropic prompt); the haystack cut to L - 200 tokens with the
//             needle, inserted at the token position of the depth backed off to a sentence
//             end; scored by whole-word recall of the needle's key words.
//   ruler   : RULER's magic-number needle (niah_single_2: essay haystack, adj-noun key,
//             7-digit value) at the given depth, RULER's template text (model template by
//             name) and answer prefix, sized like RULER; scored by string_match_all.
//   kvpress : NVIDIA kvpress's needle_in_haystack — the haystack cut to L - needle - 150
//             tokens, the needle inserted at the depth's token index, wrapped as "This is a
//             very long story book: <book> {context} </book>."; scored by ROUGE-L F of
//             the needle against the prediction (pltrdy rouge, as kvpress), x100.
//   custom  : any needle / question / answer prefix (e.g. the testbed's learned facts),
//             inserted at a sentence boundary; scored by whole-word key-word recall.
// Whole words, not substrings: "great" does not credit "eat".
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/prepared_prompt.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace echokv {

struct NiahConfig {
  std::string setup = "custom";  // kamradt | ruler | kvpress | custom
  // auto: the setup's (kamradt, custom: word_recall; ruler: string_match_all; kvpress: rouge).
  // string_match_all suits number needles (RULER credits "48213" inside "4821313").
  std::string metric = "auto";
  std::string haystack_path;     // PaulGrahamEssays.json ({"text": ...}) or a plain .txt file
  std::vector<int64_t> lengths;
  std::vector<double> depths;    // percent, 0..100
  int64_t samples_per_cell = 1;  // haystack offsets (and, for ruler, keys and values) per cell
  // Empty: the setup's own. For custom, empty needle/question take Kamradt's.
  std::string needle, question, instruction, answer_prefix, system;
  std::string ruler_template = "base";   // ruler: RULER's model template name
  std::string ruler_templates_path;      // ruler: templates.json (default: beside the haystack)
  // Words whose presence is scored (kamradt, custom); empty = the needle's words that are
  // neither in the question nor stop words (Kamradt's needle: eat sandwich sit dolores park sunny day).
  std::vector<std::string> answer_keywords;
  int64_t tokens_to_generate = -1;  // -1: the setup's (ruler: templates.json's, 128; others 48)

  // The setup's defaults filled in; throws Error on an unknown setup or a bad value.
  void resolve();
};

struct NiahSample {
  std::string setup;
  std::string metric;  // word_recall | string_match_all | rouge (empty: the setup's)
  int64_t length = 0;   // target context length
  double depth = 0;     // percent
  int64_t sample = 0;   // within its cell
  std::string system, input, answer_prefix;  // system: chat system message (kamradt), may be empty
  std::string ruler_template;                // ruler: the model template the input is wrapped in
  std::string needle;
  std::vector<std::string> outputs;          // key words (kamradt, custom), the value (ruler), the needle (kvpress)
  int64_t prompt_tokens = 0;
  int64_t tokens_to_generate = 48;
  int64_t context_begin = 0;  // bytes of input before the haystack
  int64_t context_end = -1;   // bytes of input up to the end of the haystack (the question follows)
  std::string key() const;    // "<length>/<depth>/<sample>"
  nlohmann::json to_json() const;
  static NiahSample from_json(const nlohmann::json& j, const std::string& where);
};

std::vector<std::string> niah_keywords(const NiahConfig& config);
// Fraction of key words present in the prediction as whole words (case-insensitive), in [0, 1].
double niah_keyword_recall(const std::string& prediction, const std::vector<std::string>& keywords);
// The sample's score in [0, 1] by its setup's metric.
double niah_score(const NiahSample& sample, const std::string& prediction);
std::string niah_default_metric(const std::string& setup);
std::string niah_metric_name(const std::string& metric);

// The prompt the model is fed and the token span of the haystack: the chat template (with
// the answer prefix continuing the assistant turn), or RULER's template text for ruler.
std::pair<std::vector<int64_t>, PromptSpan> niah_prompt(const Tokenizer& tokenizer, const ChatOptions& chat,
                                                        const NiahSample& sample);

std::vector<NiahSample> generate_niah(const NiahConfig& config, const Tokenizer& tokenizer, const ChatOptions& chat,
                                      uint64_t seed);

}  // namespace echokv
