#include "eval/prompt_split.h"

#include "eval/ruler_template.h"

#include <algorithm>

namespace echokv {
namespace {

size_t common_prefix(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

PromptSpan find_context_span(const PromptRenderer& render, const std::string& text, int64_t context_end_chars,
                             const std::vector<int64_t>& full) {
  PromptSpan span;
  const auto empty = render("");
  const size_t header = std::min(common_prefix(empty, render(text)), common_prefix(empty, full));
  const size_t footer = empty.size() - std::min(header, empty.size());
  span.context_begin = static_cast<int64_t>(header);
  if (context_end_chars < 0 || context_end_chars > static_cast<int64_t>(text.size())) return span;
  const auto upto = render(text.substr(0, static_cast<size_t>(context_end_chars)));
  const size_t shared = common_prefix(full, upto);
  const size_t body_end = upto.size() >= footer ? upto.size() - footer : 0;
  span.context_end = static_cast<int64_t>(std::max(header, std::min(shared, body_end)));
  return span;
}

std::vector<int64_t> chat_postfix_ids(const Tokenizer& tokenizer, const ChatOptions& chat) {
  const auto empty = render_chat(tokenizer, {{"user", ""}}, chat);
  const auto some = render_chat(tokenizer, {{"user", "x"}}, chat);
  const size_t header = common_prefix(empty, some);
  return {empty.begin() + static_cast<std::ptrdiff_t>(header), empty.end()};
}

std::vector<int64_t> kvzip_repeat_postfix_ids(const Tokenizer& tokenizer, const ChatOptions& chat) {
  if (chat.format == ChatFormat::kPlain) return tokenizer.encode("\n\nAnswer: ", false);
  auto ids = tokenizer.encode("\n\n", false);
  const auto post = chat_postfix_ids(tokenizer, chat);
  ids.insert(ids.end(), post.begin(), post.end());
  return ids;
}

std::vector<int64_t> kvzip_system_prefix_ids(const Tokenizer& tokenizer, const ChatOptions& chat) {
  const std::string instruction = "Given the context, answer to the following question or request without explanation.\n\n";
  switch (chat.format) {
    case ChatFormat::kLlama3:
      return ruler_prompt_ids(tokenizer,
                              "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant"
                              "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n" + instruction);
    case ChatFormat::kLlama2: return ruler_prompt_ids(tokenizer, "[INST] " + instruction);
    case ChatFormat::kMistral: return ruler_prompt_ids(tokenizer, "[INST]" + instruction);
    case ChatFormat::kPlain: break;
  }
  return ruler_prompt_ids(tokenizer, instruction);
}

}  // namespace echokv
