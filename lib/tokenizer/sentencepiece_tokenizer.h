// SentencePiece encoding and decoding, reimplemented from the model file with the library's
// semantics: identity normalisation with dummy prefix and whitespace escaping, user-defined
// symbols matched whole, BPE merges by piece score (ties: leftmost), unigram Viterbi, byte
// fallback for pieces outside the vocabulary.
#pragma once
#include <unordered_map>

#include "tokenizer/sentencepiece_model.h"
#include "tokenizer/tokenizer.h"

namespace echokv {

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(SentencePieceModel model, const std::string& source);
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;
  static std::unique_ptr<SentencePieceTokenizer> load(const std::string& path);

  std::vector<int64_t> encode(const std::string& text, bool add_bos = false) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(model_.pieces.size()); }
  std::string id_to_piece(int64_t id) const override;
  std::optional<int64_t> piece_to_id(const std::string& piece) const override;
  std::optional<int64_t> special_id(const std::string& text) const override;
  bool is_special(int64_t id) const override;
  std::optional<int64_t> bos_id() const override;
  std::optional<int64_t> eos_id() const override;
  std::string kind() const override;

  // The normalised string the segmenter sees ("▁Hello▁world").
  std::string normalize(const std::string& text) const;
  const SentencePieceModel& model() const { return model_; }

 private:
  using Segment = std::pair<std::string_view, int>;  // piece text, id (-1 if not in vocab)
  std::vector<Segment> encode_bpe(std::string_view normalized) const;
  std::vector<Segment> encode_unigram(std::string_view normalized) const;
  size_t match_user_defined(std::string_view s) const;  // longest user-defined prefix, 0 if none
  int lookup(std::string_view piece) const;              // id among segmentable pieces, -1 if none

  SentencePieceModel model_;
  std::string source_;
  // Keys view model_.pieces' strings (never resized after construction; the class is not
  // copyable), so lookups of text slices allocate nothing.
  std::unordered_map<std::string_view, int> pieces_;     // NORMAL, USER_DEFINED, UNUSED
  std::unordered_map<std::string_view, int> reserved_;   // CONTROL, UNKNOWN, BYTE
  std::vector<std::string> user_defined_;            // sorted longest first
  int byte_piece_id_[256];
  float min_score_ = 0, max_score_ = 0;
};

}  // namespace echokv
