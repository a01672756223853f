#include "eval/niah.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "core/error.h"
#include "core/files.h"
#include "eval/py_text.h"
#include "eval/rouge.h"
#include "eval/ruler_metrics.h"
#include "eval/ruler_template.h"
#include "eval/sample_rng.h"
#include "eval/sentence_split.h"
#include "io/jsonl.h"

namespace echokv {
namespace {

const char* kKamradtNeedle = "\nThe best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.\n";
const char* kKamradtQuestion = "What is the best thing to do in San Francisco?";
const char* kKamradtSystem = "You are a helpful AI bot that answers questions for a user. Keep your response short and direct";
const char* kKamradtInstruction = " Don't give information outside the document or repeat your findings";
const char* kKamradtAnswer = "Here is the most relevant sentence in the context:";
const int64_t kKamradtBuffer = 200;  // final_context_length_buffer
const int64_t kKvpressOverhead = 150;
const char* kKvpressWrapper = "This is a very long story book: <book> {context} </book>.";
const char* kRulerNeedle = "One of the special magic {type_needle_v} for {key} is: {value}.";
const int64_t kRulerStep = 500;      // niah.py's incremental for the essay haystack
const int64_t kOffsetStride = 5000;  // words between the haystack windows of a cell's samples

std::vector<std::string> word_tokens(const std::string& text) {
  return py::findall(R"([\p{L}\p{N}]+)", py::lower(text));
}

std::string read_haystack_text(const std::string& path) {
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
  return text;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  return s;
}

// n words of the haystack from word `offset` on, wrapping around.
std::string words_from(const std::vector<std::string>& words, size_t offset, int64_t n) {
  std::string out;
  for (int64_t i = 0; i < n; ++i) {
    if (i) out += ' ';
    out += words[(offset + static_cast<size_t>(i)) % words.size()];
  }
  return out;
}

// At least `tokens` tokens of haystack from the offset (Kamradt and kvpress cut by tokens).
std::vector<int64_t> haystack_tokens(const Tokenizer& tok, const std::vector<std::string>& words, size_t offset, int64_t tokens) {
  for (int64_t n = std::max<int64_t>(64, tokens);; n *= 2) {
    auto ids = tok.encode(words_from(words, offset, n));
    if (static_cast<int64_t>(ids.size()) >= tokens || n > static_cast<int64_t>(words.size()) * 4) return ids;
  }
}

size_t common_prefix(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

struct Setting {
  const NiahConfig& c;
  const Tokenizer& tok;
  const ChatOptions& chat;
  std::vector<std::string> words;
};

NiahSample base_sample(const NiahConfig& c, int64_t length, double depth, int64_t sample) {
  NiahSample s;
  s.setup = c.setup;
  s.metric = c.metric;
  s.length = length;
  s.depth = depth;
  s.sample = sample;
  s.system = c.system;
  s.answer_prefix = c.answer_prefix;
  s.needle = c.needle;
  s.tokens_to_generate = c.tokens_to_generate;
  return s;
}

// Kamradt: the haystack cut to L - buffer tokens with the needle, the needle at the depth's
// token position moved back to just after a token ending a sentence.
NiahSample kamradt_sample(const Setting& st, int64_t length, double depth, int64_t sample) {
  const NiahConfig& c = st.c;
  NiahSample s = base_sample(c, length, depth, sample);
  const auto needle = st.tok.encode(c.needle);
  const int64_t budget = length - kKamradtBuffer;
  if (budget <= static_cast<int64_t>(needle.size())) throw Error("NIAH length " + std::to_string(length) + " leaves no room for the haystack");
  auto ctx = haystack_tokens(st.tok, st.words, static_cast<size_t>(sample) * kOffsetStride, length);
  if (static_cast<int64_t>(ctx.size()) > length) ctx.resize(static_cast<size_t>(length));
  if (static_cast<int64_t>(ctx.size() + needle.size()) > budget) ctx.resize(static_cast<size_t>(budget) - needle.size());
  std::vector<int64_t> out;
  if (depth >= 100) {
    out = ctx;
    out.insert(out.end(), needle.begin(), needle.end());
  } else {
    auto at = static_cast<size_t>(static_cast<double>(ctx.size()) * (depth / 100.0));
    auto ends_sentence = [&](int64_t id) {
      const std::string piece = st.tok.decode({id}, true);
      return !piece.empty() && piece.back() == '.';
    };
    while (at > 0 && !ends_sentence(ctx[at - 1])) --at;
    out.assign(ctx.begin(), ctx.begin() + static_cast<std::ptrdiff_t>(at));
    out.insert(out.end(), needle.begin(), needle.end());
    out.insert(out.end(), ctx.begin() + static_cast<std::ptrdiff_t>(at), ctx.end());
  }
  const std::string head = "<context>\n", tail = "\n</context>\n\n" + c.question + c.instruction;
  s.input = head + st.tok.decode(out, true) + tail;
  s.context_begin = static_cast<int64_t>(head.size());
  s.context_end = static_cast<int64_t>(s.input.size() - tail.size());
  s.outputs = niah_keywords(c);
  return s;
}

// kvpress: the haystack cut to L - needle - 150 tokens, the needle at the depth's token index.
NiahSample kvpress_sample(const Setting& st, int64_t length, double depth, int64_t sample) {
  const NiahConfig& c = st.c;
  NiahSample s = base_sample(c, length, depth, sample);
  const auto needle = st.tok.encode(c.needle);
  const int64_t limit = length - static_cast<int64_t>(needle.size()) - kKvpressOverhead;
  if (limit <= 0) throw Error("NIAH length " + std::to_string(length) + " leaves no room for the haystack");
  auto ctx = haystack_tokens(st.tok, st.words, static_cast<size_t>(sample) * kOffsetStride, limit);
  if (static_cast<int64_t>(ctx.size()) > limit) ctx.resize(static_cast<size_t>(limit));
  const auto at = static_cast<size_t>(static_cast<double>(ctx.size()) * depth / 100.0);
  std::vector<int64_t> out(ctx.begin(), ctx.begin() + static_cast<std::ptrdiff_t>(at));
  out.insert(out.end(), needle.begin(), needle.end());
  out.insert(out.end(), ctx.begin() + static_cast<std::ptrdiff_t>(at), ctx.end());
  const std::string wrapper = kKvpressWrapper;
  const size_t slot = wrapper.find("{context}");
  const std::string tail = wrapper.substr(slot + 9) + "\n" + c.question + c.instruction;
  s.input = wrapper.substr(0, slot) + st.tok.decode(out, true) + tail;
  s.context_begin = 0;
  s.context_end = static_cast<int64_t>(s.input.size() - tail.size());
  s.outputs = {py::strip(c.needle)};
  return s;
}

// custom: the needle between sentences, the haystack sized by words to fit L with generation.
struct CustomSizer {
  const Setting& st;
  std::string build(int64_t n_words, double depth, size_t offset) const {
    auto sents = split_sentences(words_from(st.words, offset, n_words));
    const auto at = static_cast<size_t>(static_cast<double>(sents.size()) * depth / 100.0);
    sents.insert(sents.begin() + static_cast<std::ptrdiff_t>(std::min(at, sents.size())), st.c.needle);
    return py::join(sents, " ");
  }
};

// RULER's niah template, read from templates.json.
struct RulerNiahTemplate {
  std::string text, answer_prefix;
  int64_t tokens_to_generate = 128;
};

RulerNiahTemplate read_ruler_niah_template(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, std::string("malformed JSON: ") + e.what());
  }
  if (!j.contains("niah") || !j["niah"].contains("template")) fail(path, "no niah template (RULER's templates.json expected)");
  RulerNiahTemplate t;
  t.text = j["niah"]["template"].get<std::string>();
  t.answer_prefix = j["niah"].value("answer_prefix", "");
  t.tokens_to_generate = j["niah"].value("tokens_to_generate", int64_t{128});
  return t;
}


}  // namespace

void NiahConfig::resolve() {
  if (setup != "kamradt" && setup != "ruler" && setup != "kvpress" && setup != "custom")
    throw Error("niah.setup '" + setup + "' (expected kamradt, ruler, kvpress or custom)");
  if (samples_per_cell < 1) throw Error("niah.samples_per_cell must be at least 1");
  if (metric.empty() || metric == "auto") metric = niah_default_metric(setup);
  if (metric != "word_recall" && metric != "string_match_all" && metric != "rouge")
    throw Error("niah.metric '" + metric + "' (expected auto, word_recall, string_match_all or rouge)");
  if (setup == "kamradt") {
    if (needle.empty()) needle = kKamradtNeedle;
    if (question.empty()) question = kKamradtQuestion;
    if (instruction.empty()) instruction = kKamradtInstruction;
    if (system.empty()) system = kKamradtSystem;
  } else if (setup == "kvpress" || setup == "custom") {
    if (needle.empty()) needle = py::strip(kKamradtNeedle);
    if (question.empty()) question = kKamradtQuestion;
  } else if (ruler_templates_path.empty()) {
    ruler_templates_path = join_path(std::filesystem::path(haystack_path).parent_path().string(), "templates.json");
  }
  if (setup == "ruler") (void)ruler_model_template(ruler_template);
  if (setup != "ruler" && tokens_to_generate < 0) tokens_to_generate = 48;
  if (tokens_to_generate == 0 || tokens_to_generate < -1) throw Error("niah.tokens_to_generate must be positive");
}

std::string NiahSample::key() const {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%lld/%g/%lld", (long long)length, depth, (long long)sample);
  return buf;
}

nlohmann::json NiahSample::to_json() const {
  return {{"setup", setup}, {"metric", metric}, {"length", length}, {"depth", depth}, {"sample", sample}, {"system", system},
          {"input", input}, {"answer_prefix", answer_prefix}, {"ruler_template", ruler_template}, {"needle", needle},
          {"outputs", outputs}, {"prompt_tokens", prompt_tokens}, {"tokens_to_generate", tokens_to_generate}, {"context_begin", context_begin},
          {"context_end", context_end}};
}

NiahSample NiahSample::from_json(const nlohmann::json& j, const std::string& where) {
  NiahSample s;
  if (!j.contains("setup")) fail(where, "a NIAH sample from before the named setups; delete the data file to generate it again");
  s.setup = json_string(j, "setup", where);
  s.metric = j.value("metric", "");
  s.length = j.value("length", 0);
  s.depth = j.value("depth", 0.0);
  s.sample = j.value("sample", int64_t{0});
  s.system = j.value("system", "");
  s.input = json_string(j, "input", where);
  s.answer_prefix = j.value("answer_prefix", "");
  s.ruler_template = j.value("ruler_template", "");
  s.needle = j.value("needle", "");
  s.outputs = json_string_list(j, "outputs", where);
  s.prompt_tokens = j.value("prompt_tokens", 0);
  s.tokens_to_generate = j.value("tokens_to_generate", int64_t{48});
  if (s.tokens_to_generate <= 0) fail(where, "tokens_to_generate must be positive");
  s.context_begin = j.value("context_begin", int64_t{0});
  s.context_end = j.value("context_end", int64_t{-1});
  if (s.context_end > static_cast<int64_t>(s.input.size()) || s.context_begin < 0 ||
      s.context_begin > static_cast<int64_t>(s.input.size()))
    fail(where, "context_begin / context_end lie outside the input");
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

double niah_keyword_recall(const std::string& prediction, const std::vector<std::string>& keywords) {
  if (keywords.empty()) return 0.0;
  const auto words = word_tokens(prediction);
  const std::set<std::string> present(words.begin(), words.end());
  size_t found = 0;
  for (const auto& k : keywords) {
    const auto parts = word_tokens(k);  // a key word of several word pieces ("48-213") needs them in order
    if (parts.size() == 1) {
      found += present.count(parts[0]) ? 1 : 0;
    } else if (!parts.empty()) {
      found += std::search(words.begin(), words.end(), parts.begin(), parts.end()) != words.end() ? 1 : 0;
    }
  }
  return static_cast<double>(found) / static_cast<double>(keywords.size());
}

std::string niah_default_metric(const std::string& setup) {
  if (setup == "ruler") return "string_match_all";
  if (setup == "kvpress") return "rouge";
  return "word_recall";
}

double niah_score(const NiahSample& s, const std::string& prediction) {
  const std::string metric = s.metric.empty() ? niah_default_metric(s.setup) : s.metric;
  if (metric == "string_match_all") return ruler::string_match_all_sample(ruler::postprocess_pred(prediction), s.outputs);
  if (metric == "rouge") return rouge_l_f(py::strip(s.needle), py::strip(prediction));
  return niah_keyword_recall(prediction, s.outputs);
}

std::string niah_metric_name(const std::string& metric) {
  if (metric == "string_match_all") return "RULER's string_match_all (case-insensitive substring) on the answer";
  if (metric == "rouge") return "ROUGE-L F of the needle against the prediction (kvpress)";
  return "whole-word recall of the needle's key words";
}

std::pair<std::vector<int64_t>, PromptSpan> niah_prompt(const Tokenizer& tok, const ChatOptions& chat, const NiahSample& s) {
  std::function<std::vector<int64_t>(const std::string&, const std::string&)> render;
  if (s.setup == "ruler") {
    render = [&](const std::string& text, const std::string& prefix) { return ruler_prompt_ids(tok, text + prefix); };
  } else {
    render = [&](const std::string& text, const std::string& prefix) {
      std::vector<ChatMessage> m;
      if (!s.system.empty()) m.push_back({"system", s.system});
      m.push_back({"user", text});
      return render_chat(tok, m, chat, prefix);
    };
  }
  auto ids = render(s.input, s.answer_prefix);
  PromptSpan span;
  span.context_begin = static_cast<int64_t>(common_prefix(ids, render(s.input.substr(0, static_cast<size_t>(s.context_begin)), "")));
  if (s.context_end >= 0)
    span.context_end = std::max(span.context_begin,
                                static_cast<int64_t>(common_prefix(ids, render(s.input.substr(0, static_cast<size_t>(s.context_end)), ""))));
  return {std::move(ids), span};
}

std::vector<NiahSample> generate_niah(const NiahConfig& config, const Tokenizer& tok, const ChatOptions& chat, uint64_t seed) {
  NiahConfig c = config;
  c.resolve();
  if (c.lengths.empty() || c.depths.empty()) throw Error("NIAH config needs lengths and depths");
  for (double d : c.depths)
    if (d < 0 || d > 100) throw Error("NIAH depth " + std::to_string(d) + " is outside 0..100");
  Setting st{c, tok, chat, py::split(read_haystack_text(c.haystack_path))};
  if (st.words.size() < 100) fail(c.haystack_path, "haystack has fewer than 100 words");
  if (c.setup == "kamradt" && c.answer_prefix.empty())  // Anthropic's prompt ends "Assistant: Here is ..."
    c.answer_prefix = chat.format == ChatFormat::kPlain ? std::string("\n\nAssistant: ") + kKamradtAnswer : kKamradtAnswer;

  RulerNiahTemplate ruler_t;
  std::vector<std::string> adjs, nouns;
  RulerModelTemplate model_t;
  if (c.setup == "ruler") {
    ruler_t = read_ruler_niah_template(c.ruler_templates_path);
    const std::string dir = std::filesystem::path(c.ruler_templates_path).parent_path().string();
    adjs = read_word_list(join_path(dir, "adjectivelist.txt"));
    nouns = read_word_list(join_path(dir, "nounlist.txt"));
    model_t = ruler_model_template(c.ruler_template);
    if (config.tokens_to_generate < 0) c.tokens_to_generate = ruler_t.tokens_to_generate;
  }
  auto count_chat = [&](const NiahSample& s) { return static_cast<int64_t>(niah_prompt(tok, chat, s).first.size()); };

  std::vector<NiahSample> out;
  for (int64_t length : c.lengths) {
    if (c.setup == "kamradt" || c.setup == "kvpress") {
      for (double depth : c.depths)
        for (int64_t k = 0; k < c.samples_per_cell; ++k) {
          NiahSample s = c.setup == "kamradt" ? kamradt_sample(st, length, depth, k) : kvpress_sample(st, length, depth, k);
          s.answer_prefix = c.answer_prefix;
          s.prompt_tokens = count_chat(s);
          out.push_back(std::move(s));
        }
      continue;
    }
    if (c.setup == "custom") {
      CustomSizer sizer{st};
      const std::string tail = "\n\n" + c.question + c.instruction;
      auto sample_for = [&](int64_t n, double depth, int64_t k) {
        NiahSample s = base_sample(c, length, depth, k);
        s.input = sizer.build(n, depth, static_cast<size_t>(k) * kOffsetStride) + tail;
        s.context_end = static_cast<int64_t>(s.input.size() - tail.size());
        s.outputs = niah_keywords(c);
        s.prompt_tokens = count_chat(s);
        return s;
      };
      // Largest word count whose prompt (at depth 50) + generation fits, per haystack window.
      auto best_words = [&](int64_t k) {
        int64_t lo = 10, hi = std::max<int64_t>(length * 2, 20), best = -1;
        while (lo <= hi) {
          const int64_t mid = (lo + hi) / 2;
          if (sample_for(mid, 50, k).prompt_tokens + c.tokens_to_generate <= length) {
            best = mid;
            lo = mid + 1;
          } else {
            hi = mid - 1;
          }
        }
        if (best < 0) throw Error("NIAH length " + std::to_string(length) + " is too short for the needle and question");
        return best;
      };
      std::vector<int64_t> best;
      for (int64_t k = 0; k < c.samples_per_cell; ++k) best.push_back(best_words(k));
      for (double depth : c.depths)
        for (int64_t k = 0; k < c.samples_per_cell; ++k) {
          int64_t n = best[static_cast<size_t>(k)];
          NiahSample s = sample_for(n, depth, k);
          while (s.prompt_tokens + c.tokens_to_generate > length && n > 10) s = sample_for(n -= 10, depth, k);
          out.push_back(std::move(s));
        }
      continue;
    }
    // ruler: niah_single_2 at a chosen depth; the singular template, RULER's sizing.
    SampleRng rng(seed, "niah-ruler/" + std::to_string(length));
    std::string tmpl = model_t.wrap(ruler_t.text) + ruler_t.answer_prefix;
    std::string head = model_t.head();
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{{"Some", "A"}, {"are all", "is"}, {"are", "is"}, {"answers", "answer"}}) {
      tmpl = replace_all(tmpl, from, to);
      head = replace_all(head, from, to);
    }
    const size_t slot = tmpl.find("{context}");
    auto fill = [](std::string t, const std::map<std::string, std::string>& f) {
      for (const auto& [k, v] : f) t = replace_all(t, "{" + k + "}", v);
      return t;
    };
    const std::string prefix_key = ruler_t.answer_prefix.substr(0, 10);
    auto sample_for = [&](int64_t n, double depth, int64_t k, const std::string& key, const std::string& value) {
      NiahSample s = base_sample(c, length, depth, k);
      s.tokens_to_generate = c.tokens_to_generate;
      s.ruler_template = model_t.name;
      const std::string needle = fill(kRulerNeedle, {{"type_needle_v", "numbers"}, {"key", key}, {"value", value}});
      auto sents = split_sentences(py::strip(words_from(st.words, static_cast<size_t>(k) * kOffsetStride, n)));
      const auto at = static_cast<size_t>(static_cast<double>(sents.size()) * (depth / 100.0));
      std::vector<std::string> parts;
      parts.push_back(py::join(std::vector<std::string>(sents.begin(), sents.begin() + static_cast<std::ptrdiff_t>(at)), " "));
      parts.push_back(needle);
      parts.push_back(py::join(std::vector<std::string>(sents.begin() + static_cast<std::ptrdiff_t>(at), sents.end()), " "));
      const std::map<std::string, std::string> f = {{"type_needle_v", "number"}, {"query", key}};
      const std::string before = fill(tmpl.substr(0, slot), f), after = fill(tmpl.substr(slot + 9), f);
      const std::string text = before + py::join(parts, " ") + after;
      const size_t ap = text.rfind(prefix_key);
      s.input = text.substr(0, ap);
      s.answer_prefix = text.substr(ap);
      s.needle = needle;
      s.outputs = {value};
      s.context_begin = static_cast<int64_t>(head.size());
      s.context_end = static_cast<int64_t>(text.size() - after.size());
      s.prompt_tokens = static_cast<int64_t>(encode_with_control_text(tok, text).size());  // RULER's count: no BOS
      return s;
    };
    auto key_value = [&] { return std::make_pair(rng.choice(adjs) + "-" + rng.choice(nouns), std::to_string(rng.randint(1000000, 9999999))); };
    const auto [k0, v0] = key_value();
    const int64_t probe = sample_for(kRulerStep, 50, 0, k0, v0).prompt_tokens;
    int64_t lo = kRulerStep, hi = std::max<int64_t>(static_cast<int64_t>(static_cast<double>(length) / (static_cast<double>(probe) / kRulerStep) * 3), 2 * kRulerStep), best = -1;
    while (lo <= hi) {
      const int64_t mid = (lo + hi) / 2;
      if (sample_for(mid, 50, 0, k0, v0).prompt_tokens + c.tokens_to_generate <= length) {
        best = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    if (best < 0) best = kRulerStep;
    for (double depth : c.depths)
      for (int64_t k = 0; k < c.samples_per_cell; ++k) {
        const auto [key, value] = key_value();
        int64_t n = best;
        NiahSample s = sample_for(n, depth, k, key, value);
        while (s.prompt_tokens + c.tokens_to_generate > length) {
          n = n > kRulerStep ? n - kRulerStep : n / 2;
          if (n < 1) throw Error("NIAH (ruler) length " + std::to_string(length) + " is too short for the template");
          s = sample_for(n, depth, k, key, value);
        }
        out.push_back(std::move(s));
      }
  }
  return out;
}

}  // namespace echokv
