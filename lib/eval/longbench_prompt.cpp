#include "eval/longbench_prompt.h"

#include "core/error.h"
#include "core/files.h"

namespace echokv {

LongBenchPrompts LongBenchPrompts::load(const std::string& dir) {
  LongBenchPrompts p;
  for (const auto& [name, target] : {std::pair<std::string, int>{"dataset2prompt.json", 0}, {"dataset2maxlen.json", 1}}) {
    const std::string path = join_path(dir, name);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_text_file(path));
    } catch (const nlohmann::json::parse_error& e) {
      fail(path, std::string("malformed JSON: ") + e.what());
    }
    if (!j.is_object()) fail(path, "expected an object {dataset: ...}");
    for (const auto& [k, v] : j.items()) {
      if (target == 0) {
        if (!v.is_string()) fail(path, "prompt of '" + k + "' is not a string");
        p.prompt[k] = v.get<std::string>();
      } else {
        if (!v.is_number_integer()) fail(path, "max length of '" + k + "' is not an integer");
        p.max_new[k] = v.get<int64_t>();
      }
    }
  }
  return p;
}

bool longbench_uses_chat(const std::string& dataset) {
  for (const char* d : {"trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"})
    if (dataset == d) return false;
  return true;
}

std::string fill_longbench_prompt(const std::string& tmpl, const nlohmann::json& record, const std::string& where) {
  std::string out;
  size_t i = 0;
  while (i < tmpl.size()) {
    const char c = tmpl[i];
    if ((c == '{' || c == '}') && i + 1 < tmpl.size() && tmpl[i + 1] == c) {  // "{{" / "}}"
      out.push_back(c);
      i += 2;
      continue;
    }
    if (c == '{') {
      const size_t close = tmpl.find('}', i);
      if (close == std::string::npos) fail(where, "prompt template has an unclosed '{'");
      const std::string field = tmpl.substr(i + 1, close - i - 1);
      if (!record.contains(field)) fail(where, "record has no field '" + field + "' used by the prompt");
      const auto& v = record[field];
      out += v.is_string() ? v.get<std::string>() : v.dump();
      i = close + 1;
      continue;
    }
    out.push_back(c);
    ++i;
  }
  return out;
}

LongBenchInput build_longbench_input(const LongBenchPrompts& prompts, const std::string& dataset,
                                     const nlohmann::json& record, const Tokenizer& tokenizer,
                                     const ChatOptions& chat, int64_t max_length, const std::string& where,
                                     bool longbench_form) {
  auto pit = prompts.prompt.find(dataset);
  auto mit = prompts.max_new.find(dataset);
  if (pit == prompts.prompt.end() || mit == prompts.max_new.end())
    fail(where, "dataset '" + dataset + "' is not in dataset2prompt.json / dataset2maxlen.json");
  std::string prompt = fill_longbench_prompt(pit->second, record, where);
  // HF tokenizer(prompt) adds BOS (special tokens included) before measuring the length.
  const auto ids = tokenizer.encode(prompt, tokenizer.bos_id().has_value());
  if (static_cast<int64_t>(ids.size()) > max_length) {
    const int64_t half = max_length / 2;
    const std::vector<int64_t> head(ids.begin(), ids.begin() + half), tail(ids.end() - half, ids.end());
    prompt = tokenizer.decode(head, true) + tokenizer.decode(tail, true);
  }
  LongBenchInput in;
  const bool use_chat = longbench_uses_chat(dataset);
  const bool bos = tokenizer.bos_id().has_value();
  const PromptRenderer render = [&](const std::string& text) {
    if (!use_chat) return tokenizer.encode(text, bos);
    if (longbench_form) {
      if (chat.format == ChatFormat::kLlama2) return tokenizer.encode("[INST]" + text + "[/INST]", bos);
      return tokenizer.encode(text, bos);
    }
    return render_chat(tokenizer, {{"user", text}}, chat);
  };
  in.ids = render(prompt);
  // The question is the template's text after {context}; it survives truncation unless the
  // kept tail half is shorter than it.
  int64_t context_end_chars = -1;
  if (const size_t at = pit->second.find("{context}"); at != std::string::npos) {
    const std::string question = fill_longbench_prompt(pit->second.substr(at + 9), record, where);
    if (prompt.size() >= question.size() && prompt.compare(prompt.size() - question.size(), question.size(), question) == 0)
      context_end_chars = static_cast<int64_t>(prompt.size() - question.size());
  }
  in.span = find_context_span(render, prompt, context_end_chars, in.ids);
  in.max_new_tokens = mit->second;
  if (dataset == "samsum") {
    const auto nl = tokenizer.encode("\n", false);
    if (!nl.empty()) in.extra_stop_ids.push_back(nl.back());
    in.min_new_tokens = 1;
  }
  return in;
}

}  // namespace echokv
