// A tokenized text corpus held as one int32 array (documents joined by EOS), cached on disk
// next to the JSONL it came from, plus the word list the synthetic tasks draw keys from.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace echokv {

struct TokenCorpus {
  std::vector<int32_t> tokens;  // all documents, each followed by EOS
  // A random span of `length` tokens (length <= tokens.size()).
  std::vector<int64_t> span(std::mt19937_64& rng, int64_t length) const;
};

// Loads `<jsonl>.tokens.bin` if it matches the tokenizer's fingerprint, else tokenizes the
// JSONL and writes the cache atomically.
TokenCorpus load_token_corpus(const std::string& jsonl_path, const Tokenizer& tokenizer, const std::string& fingerprint);

// Lower-case alphabetic words of 4..10 letters seen at least `min_count` times, sorted.
std::vector<std::string> corpus_words(const std::vector<std::string>& texts, int min_count, size_t max_words);

}  // namespace echokv
