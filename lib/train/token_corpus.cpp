#include "train/token_corpus.h"

#include <cstring>
#include <fstream>
#include <map>
#include <unordered_map>

#include "core/error.h"
#include "core/files.h"
#include "io/jsonl.h"
#include "train/corpus.h"

namespace echokv {

std::vector<int64_t> TokenCorpus::span(std::mt19937_64& rng, int64_t length) const {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (length > n) throw Error("corpus has " + std::to_string(n) + " tokens, asked for a span of " + std::to_string(length));
  std::uniform_int_distribution<int64_t> start(0, n - length);
  const int64_t s = start(rng);
  return std::vector<int64_t>(tokens.begin() + s, tokens.begin() + s + length);
}

TokenCorpus load_token_corpus(const std::string& jsonl_path, const Tokenizer& tokenizer, const std::string& fingerprint) {
  const std::string cache = jsonl_path + ".tokens.bin";
  TokenCorpus corpus;
  if (file_exists(cache)) {
    std::ifstream in(cache, std::ios::binary);
    uint32_t fp_len = 0;
    in.read(reinterpret_cast<char*>(&fp_len), 4);
    std::string fp(fp_len, '\0');
    in.read(fp.data(), fp_len);
    uint64_t n = 0;
    in.read(reinterpret_cast<char*>(&n), 8);
    if (in && fp == fingerprint) {
      corpus.tokens.resize(n);
      in.read(reinterpret_cast<char*>(corpus.tokens.data()), static_cast<std::streamsize>(n * 4));
      if (in) return corpus;
    }
    corpus.tokens.clear();
  }
  const auto eos = tokenizer.eos_id();
  if (!eos) throw Error("tokenizer has no EOS to separate documents");
  for (const auto& text : read_jsonl_texts(jsonl_path)) {
    for (int64_t id : tokenizer.encode(text)) corpus.tokens.push_back(static_cast<int32_t>(id));
    corpus.tokens.push_back(static_cast<int32_t>(*eos));
  }
  write_file_atomic(cache, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    const uint32_t fp_len = static_cast<uint32_t>(fingerprint.size());
    const uint64_t n = corpus.tokens.size();
    out.write(reinterpret_cast<const char*>(&fp_len), 4);
    out.write(fingerprint.data(), fp_len);
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(reinterpret_cast<const char*>(corpus.tokens.data()), static_cast<std::streamsize>(n * 4));
    if (!out) fail(tmp, "write failed");
  });
  return corpus;
}

std::vector<std::string> corpus_words(const std::vector<std::string>& texts, int min_count, size_t max_words) {
  std::unordered_map<std::string, int> counts;
  for (const auto& t : texts) {
    std::string word;
    bool clean = true;
    for (size_t i = 0; i <= t.size(); ++i) {
      const char c = i < t.size() ? t[i] : ' ';
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        if (c >= 'A' && c <= 'Z') clean = false;  // keep only words seen in lower case
        word += c;
      } else {
        if (clean && word.size() >= 4 && word.size() <= 10) counts[word]++;
        word.clear();
        clean = true;
      }
    }
  }
  std::vector<std::pair<int, std::string>> ranked;
  for (const auto& [w, c] : counts)
    if (c >= min_count) ranked.push_back({-c, w});
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < ranked.size() && out.size() < max_words; ++i) out.push_back(ranked[i].second);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace echokv
