// Where the context lies in a tokenized prompt. KVzip scores and evicts only the context:
// the prefix before it (BOS, chat header) and the question after it are always kept. The
// prompt is tokenized whole (every method sees the same ids); the context's token range is
// what that tokenization shares with the rendering of the text up to the end of the context,
// minus the template's closing tokens. A token merged across the boundary counts as question.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cache/prepared_prompt.h"
#include "tokenizer/chat_template.h"

namespace echokv {

// render(text) -> ids of the prompt whose user text is `text` (chat template or plain encode).
using PromptRenderer = std::function<std::vector<int64_t>(const std::string& text)>;

// full: render(text) possibly followed by more tokens (answer prefix); context_end_chars: bytes
// of text up to the end of the context (< 0: unknown -> span with context_end -1).
PromptSpan find_context_span(const PromptRenderer& render, const std::string& text, int64_t context_end_chars,
                             const std::vector<int64_t>& full);

// Tokens the chat template puts after the user message.
std::vector<int64_t> chat_postfix_ids(const Tokenizer& tokenizer, const ChatOptions& chat);

// KVzip's postfix before a repeat prompt's answer (snu-mllab/KVzip model/template.py):
// "\n\n" + the template's end of the user turn and start of the assistant's (Llama 3:
// "\n\n<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"); without a chat
// template its fallback "\n\nAnswer: ".
std::vector<int64_t> kvzip_repeat_postfix_ids(const Tokenizer& tokenizer, const ChatOptions& chat);

// KVzip's system prefix, kept whole before the context it scores (model/template.py, task
// "qa"): Llama 3: "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a
// helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"; without a chat
// template its fallback BOS; then "Given the context, answer to the following question or
// request without explanation.\n\n". The official has no Llama 2 / Mistral entry: there the
// user turn opens as the chat template does ("[INST] " / "[INST]"), without a system block.
// One string, tokenized as the official does. Used by the head-level calibration, which is
// KVzip's own procedure; benchmark prompts keep their harness's framing.
std::vector<int64_t> kvzip_system_prefix_ids(const Tokenizer& tokenizer, const ChatOptions& chat);

}  // namespace echokv
