#include "train/retrieval_tasks.h"

#include <algorithm>

#include "core/error.h"

namespace echokv {

namespace {

const char* const kKinds[] = {"secret code", "pass number", "access key", "magic word",
                              "room number", "serial tag",  "ticket",     "password"};

// Length of the longest common prefix.
size_t common_prefix(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

}  // namespace

TaskGenerator::TaskGenerator(const Tokenizer& tokenizer, const TokenCorpus& haystack, std::vector<std::string> words,
                             TaskOptions options)
    : tokenizer_(tokenizer), haystack_(haystack), words_(std::move(words)), options_(options) {
  if (words_.size() < 50) throw Error("task generator needs at least 50 key words, got " + std::to_string(words_.size()));
  auto bos = tokenizer.bos_id();
  if (!bos) throw Error("task generator needs a tokenizer with BOS");
  bos_ = *bos;
}

std::string TaskGenerator::random_value(std::mt19937_64& rng) const {
  std::uniform_int_distribution<int> kind(0, 2);
  switch (kind(rng)) {
    case 0: {
      std::uniform_int_distribution<int> len(4, 7), digit(0, 9);
      std::string s = std::to_string(1 + digit(rng) % 9);
      for (int i = len(rng) - 1; i > 0; --i) s += std::to_string(digit(rng));
      return s;
    }
    case 1: {
      std::uniform_int_distribution<size_t> w(0, words_.size() - 1);
      return words_[w(rng)];
    }
    default: {
      const char* hex = "0123456789abcdef";
      std::uniform_int_distribution<int> h(0, 15);
      std::string s;
      for (int i = 0; i < 8; ++i) s += hex[h(rng)];
      s += '-';
      for (int i = 0; i < 4; ++i) s += hex[h(rng)];
      return s;
    }
  }
}

std::string TaskGenerator::random_key(std::mt19937_64& rng) const {
  std::uniform_int_distribution<size_t> w(0, words_.size() - 1);
  return words_[w(rng)] + " " + words_[w(rng)];
}

TaskSample TaskGenerator::assemble(std::mt19937_64& rng, int64_t length, const std::vector<std::vector<int64_t>>& facts,
                                   const std::vector<int64_t>& query, const std::vector<int64_t>& answer) const {
  int64_t fixed = 1 + static_cast<int64_t>(query.size() + answer.size());
  for (const auto& f : facts) fixed += static_cast<int64_t>(f.size());
  const int64_t hay = length - fixed;
  if (hay < 0) throw Error("sample length " + std::to_string(length) + " is too short for its facts and question");
  auto text = haystack_.span(rng, hay);
  std::uniform_int_distribution<int64_t> where(0, hay);
  std::vector<int64_t> cuts;
  for (size_t i = 0; i < facts.size(); ++i) cuts.push_back(where(rng));
  std::sort(cuts.begin(), cuts.end());
  TaskSample s;
  s.tokens.reserve(length);
  s.tokens.push_back(bos_);
  int64_t pos = 0;
  for (size_t i = 0; i < facts.size(); ++i) {
    s.tokens.insert(s.tokens.end(), text.begin() + pos, text.begin() + cuts[i]);
    s.tokens.insert(s.tokens.end(), facts[i].begin(), facts[i].end());
    pos = cuts[i];
  }
  s.tokens.insert(s.tokens.end(), text.begin() + pos, text.end());
  s.tokens.insert(s.tokens.end(), query.begin(), query.end());
  s.weights.assign(s.tokens.size() + answer.size(), 1.0f);
  for (size_t i = 0; i < answer.size(); ++i) {
    s.answer_positions.push_back(static_cast<int64_t>(s.tokens.size()));
    s.weights[s.tokens.size()] = options_.answer_weight;
    s.tokens.push_back(answer[i]);
  }
  return s;
}

TaskSample TaskGenerator::needle(std::mt19937_64& rng, int64_t length, int needles) const {
  std::uniform_int_distribution<int> count(1, options_.max_needles);
  const int n = needles > 0 ? needles : count(rng);
  std::uniform_int_distribution<size_t> kind_pick(0, std::size(kKinds) - 1);
  const std::string kind = kKinds[kind_pick(rng)];
  std::vector<std::string> keys;
  while (static_cast<int>(keys.size()) < n) {
    auto k = random_key(rng);
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  std::vector<std::string> values;
  for (int i = 0; i < n; ++i) values.push_back(random_value(rng));
  std::uniform_int_distribution<int> ask_pick(0, n - 1);
  const int ask = ask_pick(rng);
  const std::string question = "\nQuestion: What is the " + kind + " of " + keys[ask] + "?\nAnswer: The " + kind +
                               " of " + keys[ask] + " is";
  auto prefix = enc(question);
  auto full = enc(question + " " + values[ask]);
  const size_t p = common_prefix(prefix, full);
  // The asked fact always; distractors while they fit in the sample.
  std::vector<std::vector<int64_t>> facts = {enc("The " + kind + " of " + keys[ask] + " is " + values[ask] + ".")};
  int64_t used = 1 + static_cast<int64_t>(full.size() + facts[0].size());
  for (int i = 0; i < n; ++i) {
    if (i == ask) continue;
    auto f = enc("The " + kind + " of " + keys[i] + " is " + values[i] + ".");
    if (used + static_cast<int64_t>(f.size()) > length) break;
    used += static_cast<int64_t>(f.size());
    facts.push_back(std::move(f));
  }
  std::shuffle(facts.begin(), facts.end(), rng);
  return assemble(rng, length, facts, std::vector<int64_t>(full.begin(), full.begin() + p),
                  std::vector<int64_t>(full.begin() + p, full.end()));
}

TaskSample TaskGenerator::chain(std::mt19937_64& rng, int64_t length) const {
  const std::string a = random_key(rng), b = random_key(rng);
  const std::string value = random_value(rng);
  std::vector<std::vector<int64_t>> facts = {enc("Let " + a + " be " + value + "."), enc("Let " + b + " be " + a + ".")};
  // A distractor chain with its own value.
  const std::string c = random_key(rng), d = random_key(rng);
  facts.push_back(enc("Let " + c + " be " + random_value(rng) + "."));
  facts.push_back(enc("Let " + d + " be " + c + "."));
  std::shuffle(facts.begin() + 2, facts.end(), rng);
  const std::string question = "\nQuestion: What is " + b + "?\nAnswer: " + b + " is";
  auto prefix = enc(question);
  auto full = enc(question + " " + value);
  const size_t p = common_prefix(prefix, full);
  // Drop the distractor chain when the sample is too short for it.
  int64_t used = 1 + static_cast<int64_t>(full.size());
  for (const auto& f : facts) used += static_cast<int64_t>(f.size());
  if (used > length) facts.resize(2);
  // The definition of a must come before b's in the text for the chain to read naturally.
  return assemble(rng, length, facts, std::vector<int64_t>(full.begin(), full.begin() + p),
                  std::vector<int64_t>(full.begin() + p, full.end()));
}

TaskSample TaskGenerator::copy(std::mt19937_64& rng, int64_t length) const {
  const auto marker = enc("\nOnce more, word for word:\n");
  const int64_t room = length - 1 - static_cast<int64_t>(marker.size());
  if (room < 8) throw Error("copy sample length too short");
  std::uniform_int_distribution<int64_t> span_len(std::max<int64_t>(4, room / 8), room / 2);
  const int64_t l = span_len(rng);
  const int64_t pre = room - 2 * l;
  auto before = haystack_.span(rng, pre);
  auto passage = haystack_.span(rng, l);
  TaskSample s;
  s.tokens.push_back(bos_);
  s.tokens.insert(s.tokens.end(), before.begin(), before.end());
  s.tokens.insert(s.tokens.end(), passage.begin(), passage.end());
  s.tokens.insert(s.tokens.end(), marker.begin(), marker.end());
  s.weights.assign(length, 1.0f);
  for (int64_t i = 0; i < l; ++i) {
    s.answer_positions.push_back(static_cast<int64_t>(s.tokens.size()));
    s.weights[s.tokens.size()] = options_.copy_weight;
    s.tokens.push_back(passage[i]);
  }
  return s;
}

TaskSample TaskGenerator::text(std::mt19937_64& rng, int64_t length) const {
  TaskSample s;
  s.tokens.push_back(bos_);
  auto span = haystack_.span(rng, length - 1);
  s.tokens.insert(s.tokens.end(), span.begin(), span.end());
  s.weights.assign(length, 1.0f);
  return s;
}

TaskSample TaskGenerator::make(const std::string& kind, std::mt19937_64& rng, int64_t length) const {
  if (kind == "text") return text(rng, length);
  if (kind == "copy") return copy(rng, length);
  if (kind == "retrieval") {
    std::uniform_real_distribution<double> u(0, 1);
    return u(rng) < options_.chain_fraction ? chain(rng, length) : needle(rng, length);
  }
  throw Error("unknown task kind '" + kind + "' (expected text, retrieval or copy)");
}

}  // namespace echokv
