// Byte-level BPE (Llama 3): regex pre-tokenisation, then per piece: the whole piece if it is
// in the vocabulary (tiktoken; HF `ignore_merges`), else merges of adjacent parts in rank
// order (lowest rank first, leftmost among equals) in O(n log n). Special tokens are added by
// id, never parsed from text. Loads tiktoken files and HF tokenizer.json.
#pragma once
#include <map>
#include <mutex>
#include <unordered_map>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace echokv {

class ByteBpeTokenizer : public Tokenizer {
 public:
  struct Spec {
    std::unordered_map<std::string, int64_t> vocab;          // raw bytes -> id
    // Merge ranks. tiktoken: empty, a pair's rank is the rank (= id) of its concatenation.
    // HF: "left right" pair of raw-byte tokens -> merge index.
    std::map<std::pair<int64_t, int64_t>, int64_t> merges;
    bool use_merges = false;
    bool ignore_merges = true;                                 // whole piece in vocab wins
    std::vector<std::pair<std::string, int64_t>> specials;   // text -> id
    std::string pattern = kLlama3SplitPattern;
    std::string bos_text = "<|begin_of_text|>";
    std::string eos_text = "<|end_of_text|>";
    std::string kind;
  };

  ByteBpeTokenizer(Spec spec, const std::string& source);
  // tiktoken file: "base64 rank" per line; Llama 3's 256 special tokens follow at 128000+.
  static std::unique_ptr<ByteBpeTokenizer> load_tiktoken(const std::string& path);
  // HF tokenizer.json with a byte-level BPE model.
  static std::unique_ptr<ByteBpeTokenizer> load_hf_json(const std::string& path);

  std::vector<int64_t> encode(const std::string& text, bool add_bos = false) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_bytes_.size()); }
  std::string id_to_piece(int64_t id) const override;
  std::optional<int64_t> piece_to_id(const std::string& piece) const override;
  std::optional<int64_t> special_id(const std::string& text) const override;
  bool is_special(int64_t id) const override;
  std::optional<int64_t> bos_id() const override { return special_id(spec_.bos_text); }
  std::optional<int64_t> eos_id() const override { return special_id(spec_.eos_text); }
  std::string kind() const override { return spec_.kind; }

  // The merge sequence for one pre-tokenized piece (exposed for tests and converters).
  std::vector<int64_t> encode_piece(std::string_view piece) const;

 private:
  std::optional<int64_t> pair_rank(std::string_view left, std::string_view right) const;

  Spec spec_;
  std::string source_;
  RegexSplitter splitter_;
  std::vector<std::string> id_to_bytes_;
  std::vector<bool> special_;
  std::unordered_map<std::string, int64_t> special_by_text_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
};

// Llama 3.1's special tokens: 256 names for ids 128000..128255.
std::vector<std::string> llama3_special_token_names();

// GPT-2's reversible byte <-> printable-character map used by HF byte-level vocabularies.
std::string byte_level_to_bytes(const std::string& token, const std::string& source);
std::string bytes_to_byte_level(std::string_view bytes);

}  // namespace echokv
