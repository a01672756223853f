#include "eval/ruler_template.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace echokv {

namespace {

const std::map<std::string, std::string>& templates() {
  static const std::map<std::string, std::string> t = {
      {"base", "{task_template}"},
      {"meta-chat", "[INST] {task_template} [/INST]"},
      {"vicuna-chat",
       "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, "
       "and polite answers to the user's questions. USER: {task_template} ASSISTANT:"},
      {"lwm-chat", "You are a helpful assistant. USER: {task_template} ASSISTANT: "},
      {"Phi3", "<|user|>\n{task_template}<|end|>\n<|assistant|>\n"},
      {"meta-llama3",
       "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{task_template}<|eot_id|><|start_header_id|>"
       "assistant<|end_header_id|>\n\n"},
  };
  return t;
}

const char* kSlot = "{task_template}";

// Length of a control-token candidate at text[i]: <|name|>, [NAME], [/NAME], <s>, </s>; 0 if none.
size_t control_candidate(const std::string& text, size_t i) {
  auto is_name = [](char c, bool lower_ok) {
    return (c >= 'A' && c <= 'Z') || c == '_' || (lower_ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')));
  };
  const char c = text[i];
  if (c == '<') {
    if (text.compare(i, 3, "<s>") == 0) return 3;
    if (text.compare(i, 4, "</s>") == 0) return 4;
    if (text.compare(i, 2, "<|") != 0) return 0;
    size_t j = i + 2;
    while (j < text.size() && is_name(text[j], true)) ++j;
    return j > i + 2 && text.compare(j, 2, "|>") == 0 ? j + 2 - i : 0;
  }
  if (c == '[') {
    size_t j = i + 1;
    if (j < text.size() && text[j] == '/') ++j;
    const size_t name = j;
    while (j < text.size() && is_name(text[j], false)) ++j;
    return j > name && j < text.size() && text[j] == ']' ? j + 1 - i : 0;
  }
  return 0;
}

}  // namespace

std::string RulerModelTemplate::head() const { return text.substr(0, text.find(kSlot)); }

std::string RulerModelTemplate::wrap(const std::string& task_template) const {
  const size_t at = text.find(kSlot);
  return text.substr(0, at) + task_template + text.substr(at + std::string(kSlot).size());
}

RulerModelTemplate ruler_model_template(const std::string& name) {
  auto it = templates().find(name);
  if (it == templates().end()) {
    std::string known;
    for (const auto& [k, v] : templates()) known += (known.empty() ? "" : ", ") + k;
    throw Error("RULER model template '" + name + "' is unknown (known: " + known + ")");
  }
  return {it->first, it->second};
}

std::string ruler_template_name_for(ChatFormat format) {
  switch (format) {
    case ChatFormat::kLlama3: return "meta-llama3";
    case ChatFormat::kLlama2:
    case ChatFormat::kMistral: return "meta-chat";
    case ChatFormat::kPlain: break;
  }
  return "base";
}


std::vector<int64_t> encode_with_control_text(const Tokenizer& tok, const std::string& text) {
  std::vector<int64_t> ids;
  size_t from = 0;
  auto flush = [&](size_t to) {
    if (to <= from) return;
    const auto part = tok.encode(text.substr(from, to - from));
    ids.insert(ids.end(), part.begin(), part.end());
  };
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '<' && text[i] != '[') continue;
    const size_t n = control_candidate(text, i);
    if (n == 0) continue;
    const auto id = tok.special_id(text.substr(i, n));
    if (!id) continue;
    flush(i);
    ids.push_back(*id);
    from = i + n;
    i += n - 1;
  }
  flush(text.size());
  return ids;
}

std::vector<int64_t> ruler_prompt_ids(const Tokenizer& tok, const std::string& text) {
  auto ids = encode_with_control_text(tok, text);
  const auto bos = tok.bos_id();
  if (bos && (ids.empty() || ids.front() != *bos)) ids.insert(ids.begin(), *bos);
  return ids;
}

std::pair<std::vector<int64_t>, PromptSpan> ruler_prompt(const Tokenizer& tok, const RulerSample& s) {
  auto ids = ruler_prompt_ids(tok, s.input + s.answer_prefix);
  auto shared_with = [&](int64_t chars) {
    const auto part = ruler_prompt_ids(tok, s.input.substr(0, static_cast<size_t>(chars)));
    size_t i = 0;
    while (i < part.size() && i < ids.size() && part[i] == ids[i]) ++i;
    return static_cast<int64_t>(i);
  };
  PromptSpan span;
  span.context_begin = shared_with(std::clamp<int64_t>(s.context_begin, 0, static_cast<int64_t>(s.input.size())));
  if (s.context_end >= 0 && s.context_end <= static_cast<int64_t>(s.input.size()))
    span.context_end = std::max(span.context_begin, shared_with(s.context_end));
  return {std::move(ids), span};
}

}  // namespace echokv
