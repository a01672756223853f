// RULER's model templates (NVIDIA/RULER scripts/data/template.py): the chat markup is plain
// text inside the prompt, which the tokenizer then reads whole, control-token strings and
// all, exactly as RULER's prepare.py and its HF client do. RULER counts a prompt's tokens
// without BOS (text_to_tokens) and feeds the model BOS + the tokenized input + answer prefix.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cache/prepared_prompt.h"
#include "eval/ruler_tasks.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace echokv {

struct RulerModelTemplate {
  std::string name;  // template.py's key, e.g. "meta-llama3"
  std::string text;  // with one "{task_template}"
  std::string head() const;  // the text before "{task_template}"
  std::string wrap(const std::string& task_template) const;
};

// By template.py's name; throws naming the known ones.
RulerModelTemplate ruler_model_template(const std::string& name);
// RULER's template for a chat format: plain -> base, llama2 / mistral -> meta-chat,
// llama3 -> meta-llama3.
std::string ruler_template_name_for(ChatFormat format);

// Text -> ids with control-token strings in the text ("<|eot_id|>", "[INST]" where the
// tokenizer has it as a control token) read as their ids, the text between them encoded
// piece by piece, as HF tokenizers treat their special tokens. No BOS.
std::vector<int64_t> encode_with_control_text(const Tokenizer& tokenizer, const std::string& text);

// What the model is fed: BOS (when the tokenizer has one and the text does not start with it)
// + encode_with_control_text(text).
std::vector<int64_t> ruler_prompt_ids(const Tokenizer& tokenizer, const std::string& text);

// A sample's prompt ids (input + answer prefix, one string) and the token span of its
// context: what the prompt shares with the ids of the input cut at context_begin / context_end
// (a token merged across a boundary falls outside the context).
std::pair<std::vector<int64_t>, PromptSpan> ruler_prompt(const Tokenizer& tokenizer, const RulerSample& sample);

}  // namespace echokv
