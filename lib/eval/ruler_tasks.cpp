#include "eval/ruler_tasks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/files.h"
#include "eval/py_text.h"
#include "eval/ruler_template.h"
#include "eval/sample_rng.h"
#include "eval/sentence_split.h"
#include "io/jsonl.h"

namespace echokv {

namespace {

const char* kNoise = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
const char* kNeedle = "One of the special magic {type_needle_v} for {key} is: {value}.";

// str.replace(old, new) for every occurrence.
std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  size_t at = 0;
  while ((at = s.find(from, at)) != std::string::npos) {
    s.replace(at, from.size(), to);
    at += to.size();
  }
  return s;
}

// str.format with named fields only ({name}); unknown fields are left as they are.
std::string format(const std::string& tmpl, const std::map<std::string, std::string>& fields) {
  std::string out;
  size_t i = 0;
  while (i < tmpl.size()) {
    if (tmpl[i] == '{') {
      const size_t close = tmpl.find('}', i);
      if (close != std::string::npos) {
        auto it = fields.find(tmpl.substr(i + 1, close - i - 1));
        if (it != fields.end()) {
          out += it->second;
          i = close + 1;
          continue;
        }
      }
    }
    out.push_back(tmpl[i++]);
  }
  return out;
}


std::string random_letters(SampleRng& rng, int k, char base) {
  std::string s;
  for (int i = 0; i < k; ++i) s.push_back(static_cast<char>(base + rng.below(26)));
  return s;
}

}  // namespace

std::vector<std::string> read_word_list(const std::string& path) {
  std::vector<std::string> words;
  std::set<std::string> seen;
  for (const auto& line : py::split_on(read_text_file(path), "\n")) {
    const std::string w = py::strip(line);
    if (!w.empty() && seen.insert(w).second) words.push_back(w);
  }
  if (words.empty()) fail(path, "word list is empty");
  return words;
}

struct RulerData::Impl {
  std::string dir, squad_path, hotpot_path;
  std::vector<std::string> essay_words, nouns, adjs, cwe_words, english_words;
  struct Qa {
    std::string query;
    std::vector<std::string> outputs;
    std::vector<size_t> context, more;
  };
  mutable std::map<std::string, std::pair<std::vector<Qa>, std::vector<std::string>>> qa_cache;

  const std::pair<std::vector<Qa>, std::vector<std::string>>& qa(const std::string& dataset) const;
};

std::string RulerTask::arg(const std::string& key) const {
  auto it = args.find(key);
  if (it == args.end()) throw Error("RULER task '" + name + "': synthetic.yaml gives no '" + key + "'");
  return it->second;
}

int64_t RulerTask::int_arg(const std::string& key) const {
  const std::string v = arg(key);
  try {
    return std::stoll(v);
  } catch (...) {
    throw Error("RULER task '" + name + "': '" + key + "' is not an integer: " + v);
  }
}

nlohmann::json RulerSample::to_json() const {
  return {{"task", task}, {"index", index}, {"input", input}, {"answer_prefix", answer_prefix}, {"outputs", outputs},
          {"length", length}, {"max_length", max_length}, {"tokens_to_generate", tokens_to_generate},
          {"context_begin", context_begin}, {"context_end", context_end}, {"model_template", model_template}};
}

RulerSample RulerSample::from_json(const nlohmann::json& j, const std::string& where) {
  RulerSample s;
  s.task = json_string(j, "task", where);
  s.input = json_string(j, "input", where);
  s.answer_prefix = j.value("answer_prefix", "");
  s.outputs = json_string_list(j, "outputs", where);
  s.index = j.value("index", 0);
  s.length = j.value("length", 0);
  s.max_length = j.value("max_length", 0);
  s.tokens_to_generate = j.value("tokens_to_generate", 0);
  s.context_begin = j.value("context_begin", int64_t{0});
  s.context_end = j.value("context_end", int64_t{-1});
  s.model_template = j.value("model_template", "base");
  if (s.context_end > static_cast<int64_t>(s.input.size())) fail(where, "context_end lies beyond the input");
  if (s.context_begin < 0 || s.context_begin > static_cast<int64_t>(s.input.size()) ||
      (s.context_end >= 0 && s.context_begin > s.context_end))
    fail(where, "context_begin lies outside the input or after context_end");
  return s;
}

RulerData::RulerData(const std::string& data_dir, std::string squad_path, std::string hotpotqa_path)
    : impl_(std::make_unique<Impl>()) {
  impl_->dir = data_dir;
  impl_->squad_path = std::move(squad_path);
  impl_->hotpot_path = std::move(hotpotqa_path);
  const std::string yaml_path = join_path(data_dir, "synthetic.yaml");
  const std::string templates_path = join_path(data_dir, "templates.json");
  if (!file_exists(yaml_path)) fail(yaml_path, "RULER task configs not found (set the RULER data folder)");
  nlohmann::json templates;
  try {
    templates = nlohmann::json::parse(read_text_file(templates_path));
  } catch (const nlohmann::json::parse_error& e) {
    fail(templates_path, std::string("malformed JSON: ") + e.what());
  }
  YAML::Node root;
  try {
    root = YAML::LoadFile(yaml_path);
  } catch (const YAML::Exception& e) {
    fail(yaml_path, std::string("malformed YAML: ") + e.what());
  }
  for (const auto& kv : root) {
    RulerTask t;
    t.name = kv.first.as<std::string>();
    t.kind = kv.second["task"].as<std::string>("");
    for (const auto& a : kv.second["args"]) t.args[a.first.as<std::string>()] = a.second.as<std::string>();
    if (!templates.contains(t.kind)) fail(templates_path, "no template for task kind '" + t.kind + "' (task " + t.name + ")");
    const auto& tj = templates[t.kind];
    t.template_text = tj.value("template", "");
    t.answer_prefix = tj.value("answer_prefix", "");
    t.tokens_to_generate = tj.value("tokens_to_generate", 0);
    task_names_.push_back(t.name);
    tasks_[t.name] = t;
  }
  // Haystack and word lists.
  const std::string essay_path = join_path(data_dir, "PaulGrahamEssays.json");
  nlohmann::json essay;
  try {
    essay = nlohmann::json::parse(read_text_file(essay_path));
  } catch (const nlohmann::json::parse_error& e) {
    fail(essay_path, std::string("malformed JSON: ") + e.what());
  }
  if (!essay.contains("text") || !essay["text"].is_string()) fail(essay_path, "expected {\"text\": ...}");
  // re.sub(r'\s+', " ", essay).split(" ")
  const std::string normalized = py::sub(R"(\s+)", " ", essay["text"].get<std::string>());
  impl_->essay_words = py::split_on(normalized, " ");
  impl_->nouns = read_word_list(join_path(data_dir, "nounlist.txt"));
  impl_->adjs = read_word_list(join_path(data_dir, "adjectivelist.txt"));
  std::set<std::string> all(impl_->nouns.begin(), impl_->nouns.end());
  all.insert(impl_->adjs.begin(), impl_->adjs.end());
  for (auto& v : read_word_list(join_path(data_dir, "verblist.txt"))) all.insert(v);
  impl_->cwe_words.assign(all.begin(), all.end());
  // RULER's json/english_words.json ({"word": "word", ...}), optional.
  const std::string english_path = join_path(data_dir, "english_words.json");
  if (file_exists(english_path)) {
    try {
      const auto j = nlohmann::json::parse(read_text_file(english_path));
      if (!j.is_object()) fail(english_path, "expected an object of words");
      for (const auto& [k, v] : j.items()) impl_->english_words.push_back(v.get<std::string>());
    } catch (const nlohmann::json::exception& e) {
      fail(english_path, std::string("not RULER's english_words.json: ") + e.what());
    }
  }
}

RulerData::~RulerData() = default;

const RulerTask& RulerData::task(const std::string& name) const {
  auto it = tasks_.find(name);
  if (it == tasks_.end()) {
    std::string known;
    for (const auto& n : task_names_) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown RULER task '" + name + "' (known: " + known + ")");
  }
  return it->second;
}

std::string RulerData::unavailable_reason(const std::string& name) const {
  const RulerTask& t = task(name);
  if (t.kind != "qa") return "";
  const std::string dataset = t.arg("dataset");
  const std::string& path = dataset == "squad" ? impl_->squad_path : impl_->hotpot_path;
  if (path.empty()) return name + " needs the " + dataset + " dev JSON (not shipped); give its path in the config";
  if (!file_exists(path)) return name + ": " + path + " does not exist";
  return "";
}

const std::pair<std::vector<RulerData::Impl::Qa>, std::vector<std::string>>& RulerData::Impl::qa(
    const std::string& dataset) const {
  auto it = qa_cache.find(dataset);
  if (it != qa_cache.end()) return it->second;
  const std::string& path = dataset == "squad" ? squad_path : hotpot_path;
  nlohmann::json data;
  try {
    data = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("malformed JSON: ") + e.what());
  }
  std::vector<Qa> qas;
  std::set<std::string> doc_set;
  std::vector<std::pair<std::vector<std::string>, Qa>> raw;  // documents by text, resolved to ids below
  try {
    if (dataset == "squad") {
      for (const auto& d : data.at("data"))
        for (const auto& p : d.at("paragraphs")) doc_set.insert(p.at("context").get<std::string>());
    } else {
      for (const auto& d : data)
        for (const auto& c : d.at("context")) {
          std::string text = c.at(0).get<std::string>() + "\n";
          for (const auto& s : c.at(1)) text += s.get<std::string>();
          doc_set.insert(text);
        }
    }
    std::vector<std::string> docs(doc_set.begin(), doc_set.end());  // sorted(set(...))
    std::map<std::string, size_t> id;
    for (size_t i = 0; i < docs.size(); ++i) id[docs[i]] = i;
    if (dataset == "squad") {
      for (const auto& d : data.at("data")) {
        std::vector<size_t> more;
        for (const auto& p : d.at("paragraphs")) more.push_back(id.at(p.at("context").get<std::string>()));
        for (const auto& p : d.at("paragraphs")) {
          const size_t own = id.at(p.at("context").get<std::string>());
          for (const auto& q : p.at("qas")) {
            if (q.value("is_impossible", false)) continue;
            Qa qa;
            qa.query = q.at("question").get<std::string>();
            for (const auto& a : q.at("answers")) qa.outputs.push_back(a.at("text").get<std::string>());
            qa.context = {own};
            for (size_t m : more)
              if (m != own) qa.more.push_back(m);
            qas.push_back(std::move(qa));
          }
        }
      }
    } else {
      for (const auto& d : data) {
        Qa qa;
        qa.query = d.at("question").get<std::string>();
        qa.outputs = {d.at("answer").get<std::string>()};
        for (const auto& c : d.at("context")) {
          std::string text = c.at(0).get<std::string>() + "\n";
          for (const auto& s : c.at(1)) text += s.get<std::string>();
          qa.context.push_back(id.at(text));
        }
        qas.push_back(std::move(qa));
      }
    }
    return qa_cache[dataset] = {std::move(qas), std::move(docs)};
  } catch (const nlohmann::json::exception& e) {
    fail(path, "not a " + dataset + " dev file: " + e.what());
  }
}

namespace {

// One generated prompt: the whole text (model template, task template, answer prefix) and
// where its context ends (bytes from the end of the text, the filled template's tail).
struct Draft {
  std::string text;
  std::vector<std::string> outputs;
  int64_t tail_chars = 0;
  int64_t head_chars = -1;  // bytes before the task template; < 0: the model template's head
};

// str.format on the template (named fields; unknown ones are left as they are), and the
// length of what follows "{context}" once filled.
Draft draft(const std::string& tmpl, const std::map<std::string, std::string>& fields, std::vector<std::string> outputs) {
  Draft d{format(tmpl, fields), std::move(outputs), 0, -1};
  const size_t at = tmpl.find("{context}");
  d.tail_chars = at == std::string::npos ? 0 : static_cast<int64_t>(format(tmpl.substr(at + 9), fields).size());
  return d;
}

// The official scripts' search: the largest unit count in [incremental, upper] whose prompt
// (plus extra tokens) fits L; `incremental` when none does.
int64_t search_units(const std::function<int64_t(int64_t)>& tokens_for, int64_t max_length, int64_t incremental,
                     int64_t upper) {
  int64_t lo = incremental, hi = std::max(upper, incremental * 2), best = -1;
  while (lo <= hi) {
    const int64_t mid = (lo + hi) / 2;
    if (tokens_for(mid) <= max_length) {
      best = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return best < 0 ? incremental : best;
}

// RULER's estimate of the search's upper bound: int((L / tokens_per_unit) * 3).
int64_t three_times_estimate(int64_t max_length, int64_t probe_tokens, int64_t probe_units) {
  const double per_unit = std::max(1e-9, static_cast<double>(probe_tokens) / static_cast<double>(probe_units));
  return static_cast<int64_t>(static_cast<double>(max_length) / per_unit * 3.0);
}

// Riemann zeta(alpha), alpha > 1: partial sum plus the Euler-Maclaurin tail.
double zeta(double alpha) {
  const int64_t n = 100000;
  double sum = 0;
  for (int64_t k = 1; k < n; ++k) sum += std::pow(static_cast<double>(k), -alpha);
  const double N = static_cast<double>(n);
  return sum + std::pow(N, 1 - alpha) / (alpha - 1) + 0.5 * std::pow(N, -alpha) + alpha / 12.0 * std::pow(N, -alpha - 1);
}

std::string numbered(const std::vector<std::string>& words) {
  std::string s;
  for (size_t i = 0; i < words.size(); ++i) s += (i ? " " : "") + std::to_string(i + 1) + ". " + words[i];
  return s;
}

// How a family makes a prompt of n haystack units, and where the size search starts.
struct HaystackPlan {
  std::function<Draft(int64_t, int64_t)> make;  // (haystack units, sample index) -> prompt
  int64_t incremental = 10;                      // the search's step and shrink step
  int64_t units = -1;                            // < 0: found by the generic search
};

// One generate() call: the task, the data, the sample stream and the sizes, and one
// generator per task family (the official script of that name). It outlives the plans its
// generators return (their prompt makers read it).
struct RulerJob {
  const RulerTask& t;
  const std::string& name;
  const RulerData::Impl& d;
  SampleRng& rng;
  const RulerModelTemplate& model_template;
  std::string full_template;  // the model template around the task template, then the answer prefix
  int64_t max_length, ttg;
  uint64_t seed;
  const RulerTokenCounter& count;
  const RulerGenerateOptions& options;
  std::function<size_t(int64_t)> essay_index;  // i-th haystack word -> index into the essays' words

  HaystackPlan niah_plan() const;
  HaystackPlan vt_plan() const;
  HaystackPlan cwe_plan() const;
  HaystackPlan qa_plan() const;
  std::vector<RulerSample> fwe_samples(int64_t num_samples,
                                       const std::function<RulerSample(int64_t, const Draft&, int64_t)>& finish) const;
};

// niah.py: needles (key, value) in an essay, noise or needle haystack.
HaystackPlan RulerJob::niah_plan() const {
  HaystackPlan plan;
  const std::string type_haystack = t.arg("type_haystack"), type_k = t.arg("type_needle_k"), type_v = t.arg("type_needle_v");
  const int64_t nv = t.int_arg("num_needle_v"), nq = t.int_arg("num_needle_q");
  const int64_t nk = std::max(t.int_arg("num_needle_k"), nq);  // at least as many keys as queries
  plan.incremental = type_haystack == "essay" ? 500 : (max_length < 4096 ? 5 : 25);
  std::vector<int> depths;  // np.round(np.linspace(0, 100, 40)).astype(int)
  for (int i = 0; i < 40; ++i) depths.push_back(static_cast<int>(std::nearbyint(100.0 * i / 39.0)));
  auto random_value = [this](const std::string& type) -> std::string {
    if (type == "numbers") return std::to_string(rng.randint(1000000, 9999999));
    if (type == "words") return rng.choice(d.adjs) + "-" + rng.choice(d.nouns);
    if (type == "uuids") {
      const uint64_t hi = (rng.bits64() & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;
      const uint64_t lo = (rng.bits64() & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
      char buf[40];
      std::snprintf(buf, sizeof(buf), "%08llx-%04llx-%04llx-%04llx-%012llx", (unsigned long long)(hi >> 32),
                    (unsigned long long)((hi >> 16) & 0xFFFF), (unsigned long long)(hi & 0xFFFF),
                    (unsigned long long)(lo >> 48), (unsigned long long)(lo & 0xFFFFFFFFFFFFULL));
      return buf;
    }
    throw Error("RULER niah: unknown needle type '" + type + "'");
  };
  plan.make = [=](int64_t n, int64_t) -> Draft {
    std::vector<std::string> keys, needles;
    std::vector<std::vector<std::string>> values;
    for (int64_t k = 0; k < nk; ++k) {
      keys.push_back(random_value(type_k));
      values.emplace_back();
      for (int64_t v = 0; v < nv; ++v) {
        values.back().push_back(random_value(type_v));
        needles.push_back(format(kNeedle, {{"type_needle_v", type_v}, {"key", keys.back()}, {"value", values.back().back()}}));
      }
    }
    rng.shuffle(needles);
    std::string context;
    if (type_haystack == "essay") {
      std::vector<std::string> words;
      for (int64_t i = 0; i < n; ++i) words.push_back(d.essay_words[essay_index(i)]);
      const auto sents = split_sentences(py::strip(py::join(words, " ")));
      std::vector<size_t> positions;
      for (size_t i : rng.sample_indices(depths.size(), needles.size()))
        positions.push_back(static_cast<size_t>(static_cast<double>(sents.size()) * (depths[i] / 100.0)));
      std::sort(positions.begin(), positions.end());
      positions.insert(positions.begin(), 0);
      positions.push_back(sents.size());
      std::vector<std::string> parts;
      for (size_t i = 1; i < positions.size(); ++i) {
        parts.push_back(py::join(std::vector<std::string>(sents.begin() + positions[i - 1], sents.begin() + positions[i]), " "));
        if (i - 1 < needles.size()) parts.push_back(needles[i - 1]);
      }
      context = py::join(parts, " ");
    } else {
      std::vector<std::string> sentences;
      for (int64_t i = 0; i < n; ++i)
        sentences.push_back(type_haystack == "noise" ? std::string(kNoise)
                                                     : format(kNeedle, {{"type_needle_v", type_v},
                                                                        {"key", random_value(type_k)},
                                                                        {"value", random_value(type_v)}}));
      auto idx = rng.sample_indices(static_cast<size_t>(n), needles.size());
      std::sort(idx.rbegin(), idx.rend());
      for (size_t i = 0; i < idx.size(); ++i) sentences.insert(sentences.begin() + idx[i], needles[i]);
      context = py::join(sentences, "\n");
    }
    std::vector<std::string> queries, answers;
    for (size_t i : rng.sample_indices(static_cast<size_t>(nk), static_cast<size_t>(nq))) {
      queries.push_back(keys[i]);
      for (const auto& v : values[i]) answers.push_back(v);
    }
    std::string query = queries.back();
    if (queries.size() > 1)
      query = py::join(std::vector<std::string>(queries.begin(), queries.end() - 1), ", ") + ", and " + queries.back();
    std::string tmpl = full_template, type_shown = type_v;
    if (nq * nv == 1) {  // niah.py's singular rewrite, on the whole template (model template included)
      tmpl = replace_all(tmpl, "Some", "A");
      tmpl = replace_all(tmpl, "are all", "is");
      tmpl = replace_all(tmpl, "are", "is");
      tmpl = replace_all(tmpl, "answers", "answer");
      type_shown = type_v.substr(0, type_v.size() - 1);
    }
    Draft m = draft(tmpl, {{"type_needle_v", type_shown}, {"context", context}, {"query", query}}, answers);
    if (nq * nv == 1) {  // the head, rewritten alike
      std::string head = model_template.head();
      for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{{"Some", "A"}, {"are all", "is"}, {"are", "is"}, {"answers", "answer"}})
        head = replace_all(head, from, to);
      m.head_chars = static_cast<int64_t>(head.size());
    }
    return m;
  };
  return plan;
}

// variable_tracking.py: chains of VAR assignments in noise, after a searched in-context example.
HaystackPlan RulerJob::vt_plan() const {
  HaystackPlan plan;
  if (t.arg("type_haystack") != "noise") throw Error("RULER " + name + ": only the noise haystack is implemented for vt");
  const int64_t chains = t.int_arg("num_chains"), hops = t.int_arg("num_hops");
  // generate_input_output: chains among n noise lines joined by "\n"; the ICL form has
  // 3-letter names, at most 10 hops, the value 12345 and the bare task template.
  // (captures only what outlives this block: `make` runs after it)
  auto one = [this, chains, hops](int64_t n_noise, bool icl) -> Draft {
    const int64_t n_hops = icl ? std::min<int64_t>(10, hops) : hops;
    std::set<std::string> used;
    std::vector<std::vector<std::string>> vars, lines;
    for (int64_t c = 0; c < chains; ++c) {
      vars.emplace_back();
      while (static_cast<int64_t>(vars.back().size()) < n_hops + 1) {
        const std::string v = random_letters(rng, icl ? 3 : 5, 'A');
        if (used.insert(v).second) vars.back().push_back(v);
      }
      lines.emplace_back();
      lines.back().push_back("VAR " + vars.back()[0] + " = " + (icl ? std::string("12345") : std::to_string(rng.randint(10000, 99998))));
      for (int64_t j = 0; j < n_hops; ++j) lines.back().push_back("VAR " + vars.back()[j + 1] + " = VAR " + vars.back()[j] + " ");
    }
    std::vector<std::string> sentences(static_cast<size_t>(n_noise), std::string(kNoise));
    for (const auto& chain : lines) {
      if (sentences.size() < chain.size()) throw Error("RULER vt: too few noise sentences for the chain");
      auto pos = rng.sample_indices(sentences.size(), chain.size());
      std::sort(pos.begin(), pos.end());
      for (size_t j = 0; j < chain.size(); ++j) sentences.insert(sentences.begin() + pos[j] + j, chain[j]);
    }
    const std::string context = replace_all(py::join(sentences, "\n"), ". \n", ".\n");
    const std::string value = py::strip(lines[0][0].substr(lines[0][0].rfind('=') + 1));
    const std::string tmpl = icl ? t.template_text + t.answer_prefix : full_template;
    return draft(tmpl, {{"context", context}, {"query", value}, {"num_v", std::to_string(n_hops + 1)}}, vars[0]);
  };
  // The ICL example: the same search at L = 500 with no tokens to generate, step 5.
  const int64_t icl_probe = count(one(5, true).text);
  const int64_t icl_units = search_units([&](int64_t n) { return count(one(n, true).text); }, 500, 5,
                                         three_times_estimate(500, icl_probe, 5));
  std::string icl_example;
  for (int64_t n = icl_units;; n = n > 5 ? n - 5 : n - 1) {
    if (n < 1) throw Error("RULER " + name + ": no in-context example fits 500 tokens");
    const Draft e = one(n, true);
    if (count(e.text) <= 500) {
      icl_example = e.text + " " + py::join(e.outputs, " ") + "\n";
      break;
    }
  }
  const int64_t extra_tokens = count(icl_example);
  plan.incremental = max_length < 4096 ? 5 : 10;
  // randomize_icl: new names for the example's answers, a new value for 12345.
  auto randomize_icl = [this, hops](std::string icl) {
    auto words = py::split(py::strip(icl));
    const size_t take = std::min(words.size(), static_cast<size_t>(hops + 1));
    for (size_t i = words.size() - take; i < words.size(); ++i)
      icl = replace_all(icl, words[i], random_letters(rng, static_cast<int>(words[i].size()), 'A'));
    return replace_all(icl, "12345", std::to_string(rng.randint(10000, 99998)));
  };
  const std::string task_head = t.template_text.substr(0, 20);
  plan.make = [=](int64_t n, int64_t) -> Draft {
    Draft m = one(n, false);
    const size_t cutoff = m.text.find(task_head);
    m.text.insert(cutoff == std::string::npos ? 0 : cutoff, randomize_icl(icl_example) + "\n");
    return m;
  };
  // The search sizes the bare prompt and adds the example's tokens.
  const int64_t probe = count(one(plan.incremental, false).text);
  plan.units = search_units([&](int64_t n) { return count(one(n, false).text) + extra_tokens + ttg; }, max_length,
                            plan.incremental, three_times_estimate(max_length, probe, plan.incremental));
  return plan;
}

// common_words_extraction.py: a numbered word list, after a wrapped few-shot exchange.
HaystackPlan RulerJob::cwe_plan() const {
  HaystackPlan plan;
  const int64_t freq_cw = t.int_arg("freq_cw"), freq_ucw = t.int_arg("freq_ucw"), num_cw = t.int_arg("num_cw");
  auto shuffled = std::make_shared<std::vector<std::string>>(d.cwe_words);
  SampleRng(seed, "cwe-words").shuffle(*shuffled);
  const std::vector<std::string>& english = d.english_words;  // lives in Impl
  const std::string english_path = join_path(d.dir, "english_words.json");
  // (captures only what outlives this block: `make` runs after it)
  auto example = [this, shuffled, &english, english_path, num_cw](int64_t n, int64_t common_rep, int64_t uncommon_rep,
                                                                 std::vector<std::string>& common) {
    const std::vector<std::string>& words = *shuffled;
    const std::vector<std::string>& pool = n <= static_cast<int64_t>(words.size()) ? words : english;
    if (n > static_cast<int64_t>(pool.size()))
      throw Error("RULER cwe: this length needs " + std::to_string(n) + " distinct words; the word lists hold " +
                  std::to_string(words.size()) + (english.empty() ? " and " + english_path + " (RULER's json/english_words.json) is absent"
                                                                    : " and english_words.json " + std::to_string(english.size())));
    std::vector<std::string> chosen;
    for (size_t i : rng.sample_indices(pool.size(), static_cast<size_t>(n))) chosen.push_back(pool[i]);
    common.assign(chosen.begin(), chosen.begin() + std::min<int64_t>(num_cw, n));
    std::vector<std::string> list;
    for (int64_t r = 0; r < common_rep; ++r) list.insert(list.end(), common.begin(), common.end());
    for (int64_t r = 0; r < uncommon_rep; ++r) list.insert(list.end(), chosen.begin() + static_cast<std::ptrdiff_t>(common.size()), chosen.end());
    rng.shuffle(list);
    return numbered(list);
  };
  const bool short_ctx = max_length < 4096;
  const std::string cw = std::to_string(num_cw);
  // The few-shot example is a whole wrapped exchange (model template, answer prefix, its
  // answer), joined to the question's prompt by "\n".
  plan.make = [=](int64_t n, int64_t) -> Draft {
    std::vector<std::string> shot_answer, answer;
    const std::string shot_ctx = short_ctx ? example(20, 3, 1, shot_answer) : example(40, 10, 3, shot_answer);
    const std::string ctx = short_ctx ? example(n, 6, 1, answer) : example(n, freq_cw, freq_ucw, answer);
    const std::string shot = format(full_template, {{"num_cw", cw}, {"context", shot_ctx}, {"query", ""}}) + " " + numbered(shot_answer);
    Draft m = draft(full_template, {{"num_cw", cw}, {"context", ctx}, {"query", ""}}, answer);
    m.text = shot + "\n" + m.text;
    return m;
  };
  // Tokens per word from a 4096-word prompt; upper bound int(L // per_word) * 2.
  const int64_t probe = count(plan.make(4096, 0).text);
  const double per_word = static_cast<double>(probe) / 4096.0;
  plan.units = search_units([&](int64_t n) { return count(plan.make(n, 0).text) + ttg; }, max_length, plan.incremental,
                       static_cast<int64_t>(std::floor(static_cast<double>(max_length) / per_word)) * 2);
  return plan;
}

// qa.py: documents around the question's own (SQuAD / HotpotQA).
HaystackPlan RulerJob::qa_plan() const {
  HaystackPlan plan;
  const auto& dataset = d.qa(t.arg("dataset"));  // lives in d, as the prompt maker needs
  const auto& qas = dataset.first;
  const auto& docs = dataset.second;
  if (qas.empty()) throw Error("RULER " + name + ": the dataset has no answerable questions");
  const bool own_order = options.per_sample_document_order;
  plan.make = [this, &qas, &docs, own_order](int64_t n, int64_t index) -> Draft {
    const auto& q = qas[static_cast<size_t>(index) % qas.size()];
    std::vector<size_t> chosen;
    const int64_t n_docs = static_cast<int64_t>(docs.size());
    if (n < n_docs) {
      chosen = q.context;
      const int64_t need = std::max<int64_t>(0, n - static_cast<int64_t>(q.context.size()));
      if (need > static_cast<int64_t>(q.more.size())) {
        std::set<size_t> taken(q.context.begin(), q.context.end());
        taken.insert(q.more.begin(), q.more.end());
        chosen.insert(chosen.end(), q.more.begin(), q.more.end());
        std::vector<size_t> rest;
        for (size_t i = 0; i < docs.size(); ++i)
          if (!taken.count(i)) rest.push_back(i);
        const size_t extra = std::min(rest.size(), static_cast<size_t>(need) - q.more.size());
        for (size_t i : rng.sample_indices(rest.size(), extra)) chosen.push_back(rest[i]);
      } else {
        for (size_t i : rng.sample_indices(q.more.size(), static_cast<size_t>(need))) chosen.push_back(q.more[i]);
      }
    } else {  // every document, repeated as needed, cut to n
      for (int64_t i = 0; i < n; ++i) chosen.push_back(static_cast<size_t>(i % n_docs));
    }
    if (own_order) {
      rng.shuffle(chosen);
    } else {  // random.Random(seed).shuffle: one permutation per document count
      SampleRng(seed, "qa-order/" + std::to_string(chosen.size())).shuffle(chosen);
    }
    std::vector<std::string> parts;
    for (size_t i = 0; i < chosen.size(); ++i) parts.push_back("Document " + std::to_string(i + 1) + ":\n" + docs[chosen[i]]);
    return draft(full_template, {{"context", py::join(parts, "\n\n")}, {"query", q.query}}, q.outputs);
  };
  return plan;
}

// freq_words_extraction.py: Zipf-distributed words; its own size search per sample.
std::vector<RulerSample> RulerJob::fwe_samples(
    int64_t num_samples, const std::function<RulerSample(int64_t, const Draft&, int64_t)>& finish) const {
  int64_t units = -1;
  const double alpha = std::stod(t.arg("alpha"));
  const int64_t budget = max_length - ttg;  // the prompt's budget
  const int64_t vocab_size = budget / 50;
  if (vocab_size < 4) throw Error("RULER " + name + ": a target of " + std::to_string(max_length) + " tokens is too short (vocabulary of " + std::to_string(vocab_size) + " words)");
  const int64_t step = std::max<int64_t>(1, budget / 32);
  const double z = zeta(alpha);
  auto new_vocab = [this, vocab_size] {
    std::set<std::string> vocab_set;
    while (static_cast<int64_t>(vocab_set.size()) < vocab_size) vocab_set.insert(random_letters(rng, 6, 'a'));
    std::vector<std::string> vocab(vocab_set.begin(), vocab_set.end());
    rng.shuffle(vocab);
    vocab[0] = "...";  // the top-ranked word is noise
    return vocab;
  };
  auto text_for = [this, alpha, z](const std::vector<std::string>& vocab, int64_t n) {
    std::vector<std::string> text;
    for (size_t k = 1; k <= vocab.size(); ++k) {
      const auto c = static_cast<int64_t>(static_cast<double>(n) * std::pow(static_cast<double>(k), -alpha) / z);
      for (int64_t i = 0; i < c; ++i) text.push_back(vocab[k - 1]);
    }
    rng.shuffle(text);
    return draft(full_template, {{"context", py::join(text, " ")}, {"query", ""}}, {vocab[1], vocab[2], vocab[3]});
  };
  // Grow from budget // 6 words by budget // 32 until the prompt reaches the budget, step back once.
  {
    const auto vocab = new_vocab();
    int64_t n = budget / 6;
    while (count(text_for(vocab, n).text) < budget) n += step;
    units = n - step;
  }
  std::vector<RulerSample> out;
  for (int64_t index = 0; index < num_samples; ++index) {
    const auto vocab = new_vocab();
    int64_t n = units;
    Draft m = text_for(vocab, n);
    int64_t tokens = count(m.text);
    while (tokens > budget) {
      n -= step;
      if (n < 1) throw Error("RULER " + name + ": no word count fits " + std::to_string(max_length) + " tokens");
      m = text_for(vocab, n);
      tokens = count(m.text);
    }
    out.push_back(finish(index, m, tokens + ttg));
  }
  return out;
}

}  // namespace

int64_t RulerData::essay_word_count() const { return static_cast<int64_t>(impl_->essay_words.size()); }

std::vector<RulerSample> RulerData::generate(const std::string& name, int64_t max_length, int64_t num_samples,
                                             uint64_t seed, const RulerTokenCounter& count,
                                             const RulerGenerateOptions& options) const {
  const RulerTask& t = task(name);
  if (const std::string why = unavailable_reason(name); !why.empty()) throw Error(why);
  const RulerModelTemplate model_template = ruler_model_template(options.model_template);
  SampleRng rng(seed, name + "/" + std::to_string(max_length));
  const Impl& d = *impl_;
  const int64_t ttg = t.tokens_to_generate;
  // prepare.py: the model template around the task template, then the answer prefix.
  const std::string full_template = model_template.wrap(t.template_text) + t.answer_prefix;
  // The official split: the answer prefix starts at the last occurrence of its first 10 characters.
  auto finish = [&](int64_t index, const Draft& m, int64_t length) {
    const std::string key = t.answer_prefix.substr(0, std::min<size_t>(10, t.answer_prefix.size()));
    size_t at = key.empty() ? std::string::npos : m.text.rfind(key);
    if (at == std::string::npos) at = m.text.size();
    RulerSample s;
    s.task = name;
    s.index = index;
    s.input = m.text.substr(0, at);
    s.answer_prefix = m.text.substr(at);
    s.outputs = m.outputs;
    s.length = length;
    s.max_length = max_length;
    s.tokens_to_generate = ttg;
    s.model_template = model_template.name;
    const int64_t input_chars = static_cast<int64_t>(s.input.size());
    s.context_begin = std::min<int64_t>(input_chars, m.head_chars >= 0 ? m.head_chars : static_cast<int64_t>(model_template.head().size()));
    s.context_end = std::max(s.context_begin, std::min(input_chars, static_cast<int64_t>(m.text.size()) - m.tail_chars));
    return s;
  };

  const int64_t essay_words = static_cast<int64_t>(d.essay_words.size());
  const int64_t range_begin = options.essay_range_begin_words, offset = options.essay_offset_words;
  if (range_begin < 0 || range_begin >= essay_words || offset < range_begin || offset >= essay_words)
    throw Error("RULER essay range: begin " + std::to_string(range_begin) + ", offset " + std::to_string(offset) +
                " outside the essays' " + std::to_string(essay_words) + " words");
  // i-th haystack word -> index into the essays' words, wrapping within [range_begin, end)
  const auto essay_index = [range_begin, offset, essay_words](int64_t i) {
    return static_cast<size_t>(range_begin + (offset - range_begin + i) % (essay_words - range_begin));
  };

  const RulerJob job{t, name, d, rng, model_template, full_template, max_length, ttg, seed, count, options, essay_index};
  HaystackPlan plan;
  if (t.kind == "niah") plan = job.niah_plan();
  else if (t.kind == "variable_tracking") plan = job.vt_plan();
  else if (t.kind == "common_words_extraction") plan = job.cwe_plan();
  else if (t.kind == "qa") plan = job.qa_plan();
  else if (t.kind == "freq_words_extraction") return job.fwe_samples(num_samples, finish);
  else throw Error("RULER task '" + name + "': unknown task kind '" + t.kind + "'");
  const auto& make = plan.make;
  const int64_t incremental = plan.incremental;
  int64_t units = plan.units;
  if (units < 0) {  // niah, qa: probe `incremental` units, search up to 3x the estimate
    const int64_t probe = count(make(incremental, 0).text);
    units = search_units([&](int64_t n) { return count(make(n, 0).text) + ttg; }, max_length, incremental,
                         three_times_estimate(max_length, probe, incremental));
  }

  std::vector<RulerSample> out;
  for (int64_t index = 0; index < num_samples; ++index) {
    int64_t used = units;
    while (true) {
      const Draft m = make(used, index);
      const int64_t length = count(m.text) + ttg;
      if (length <= max_length) {
        out.push_back(finish(index, m, length));
        break;
      }
      // RULER shrinks by the increment; below it (short targets, wordy tokenizers) keep halving.
      if (used > incremental) {
        used -= incremental;
      } else if (used > 1) {
        used /= 2;
      } else {
        throw Error("RULER " + name + ": even a one-unit haystack exceeds " + std::to_string(max_length) +
                    " tokens; use a longer length");
      }
    }
  }
  return out;
}

}  // namespace echokv
