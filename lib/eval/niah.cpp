#include "eval/niah.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/files.h"
#include "eval/py_text.h"
#include "eval/sentence_split.h"
#include "io/jsonl.h"

namespace echokv {
namespace {

std::vector<std::string> word_tokens(const std::string& text) {
  return py::findall(R"([\p{L}\p{N}]+)", py::lower(text));
}

std::vector<std::string> load_haystack_words(const std::string& path) {
  std::string text = read_text_file(path);
  if (path.size() > 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
    try {
      const auto j = nlohmann::json::parse(text);
      if (!j.contains("text") || !j["text"].is_string()) fail(path, "expected {\"text\": ...}");
      text = j["text"].get<std::string>();
    } catch (const nlohmann::json::parse_error& e) {
      fail(path, std::string("malformed JSON: ") + e.what());
    }
  }
  auto words = py::split(text);
  if (words.size() < 100) fail(path, "haystack has fewer than 100 words");
  return words;
}

}  // namespace

nlohmann::json NiahSample::to_json() const {
  return {{"length", length}, {"depth", depth}, {"input", input}, {"answer_prefix", answer_prefix},
          {"keywords", keywords}, {"prompt_tokens", prompt_tokens}, {"context_end", context_end}};
}

NiahSample NiahSample::from_json(const nlohmann::json& j, const std::string& where) {
  NiahSample s;
  s.length = j.value("length", 0);
  s.depth = j.value("depth", 0.0);
  s.input = json_string(j, "input", where);
  s.answer_prefix = j.value("answer_prefix", "");
  s.keywords = json_string_list(j, "keywords", where);
  s.prompt_tokens = j.value("prompt_tokens", 0);
  s.context_end = j.value("context_end", int64_t{-1});
  if (s.context_end > static_cast<int64_t>(s.input.size())) fail(where, "context_end lies beyond the input");
  return s;
}

std::vector<std::string> niah_keywords(const NiahConfig& config) {
  if (!config.answer_keywords.empty()) {
    std::vector<std::string> out;
    for (const auto& k : config.answer_keywords)
      for (const auto& w : word_tokens(k)) out.push_back(w);
    return out;
  }
  static const std::set<std::string> stop = {"a", "an", "the", "is", "are", "was", "to", "do", "in", "on", "of", "and",
                                             "or", "at", "by", "for", "with", "it", "its", "be", "as", "that", "this"};
  const auto q = word_tokens(config.question);
  const std::set<std::string> in_question(q.begin(), q.end());
  std::vector<std::string> out;
  for (const auto& w : word_tokens(config.needle))
    if (!stop.count(w) && !in_question.count(w) && std::find(out.begin(), out.end(), w) == out.end()) out.push_back(w);
  if (out.empty()) throw Error("NIAH needle has no key words outside the question; set answer_keywords");
  return out;
}

double niah_score(const std::string& prediction, const std::vector<std::string>& keywords) {
  if (keywords.empty()) return 0.0;
  const std::string pred = py::lower(prediction);
  size_t found = 0;
  for (const auto& k : keywords) found += py::contains(pred, py::lower(k)) ? 1 : 0;
  return static_cast<double>(found) / static_cast<double>(keywords.size());
}

std::vector<NiahSample> generate_niah(const NiahConfig& config, const PromptTokenCounter& count) {
  if (config.lengths.empty() || config.depths.empty()) throw Error("NIAH config needs lengths and depths");
  for (double d : config.depths)
    if (d < 0 || d > 100) throw Error("NIAH depth " + std::to_string(d) + " is outside 0..100");
  const auto words = load_haystack_words(config.haystack_path);
  const auto keywords = niah_keywords(config);
  auto build = [&](int64_t n_words, double depth) {
    std::vector<std::string> taken;
    for (int64_t i = 0; i < n_words; ++i) taken.push_back(words[static_cast<size_t>(i) % words.size()]);
    auto sents = split_sentences(py::join(taken, " "));
    const auto at = static_cast<size_t>(static_cast<double>(sents.size()) * depth / 100.0);
    sents.insert(sents.begin() + static_cast<std::ptrdiff_t>(std::min(at, sents.size())), config.needle);
    return py::join(sents, " ") + "\n\n" + config.question + config.instruction;
  };
  std::vector<NiahSample> out;
  for (int64_t length : config.lengths) {
    // Largest word count whose prompt (at depth 50) + generation fits the length.
    int64_t lo = 10, hi = std::max<int64_t>(length * 2, 20), best = -1;
    while (lo <= hi) {
      const int64_t mid = (lo + hi) / 2;
      if (count(build(mid, 50), config.answer_prefix) + config.tokens_to_generate <= length) {
        best = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (best < 0) throw Error("NIAH length " + std::to_string(length) + " is too short for the needle and question");
    for (double depth : config.depths) {
      int64_t n = best;
      std::string input = build(n, depth);
      int64_t tokens = count(input, config.answer_prefix);
      while (tokens + config.tokens_to_generate > length && n > 10) {
        n -= 10;
        input = build(n, depth);
        tokens = count(input, config.answer_prefix);
      }
      NiahSample s;
      s.length = length;
      s.depth = depth;
      s.context_end = static_cast<int64_t>(input.size() - ("\n\n" + config.question + config.instruction).size());
      s.input = std::move(input);
      s.answer_prefix = config.answer_prefix;
      s.keywords = keywords;
      s.prompt_tokens = tokens;
      out.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace echokv
