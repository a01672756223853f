// Regex pre-tokenisation with PCRE2 (UTF + UCP, JIT): splits text into the pieces BPE runs on.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace echokv {

// Llama 3's split pattern (tiktoken cl100k-style with 1-3 digit groups).
inline constexpr const char* kLlama3SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-2's ByteLevel pattern (HF ByteLevel pre-tokenizer with use_regex=true).
inline constexpr const char* kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class RegexSplitter {
 public:
  explicit RegexSplitter(const std::string& pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;
  // The matched pieces, in order (views into `text`, which must be valid UTF-8).
  std::vector<std::string_view> split(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
};

}  // namespace echokv
