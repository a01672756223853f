// Turns generated ids into text as they arrive, printing only complete characters.
#pragma once
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace echokv {

class StreamDecoder {
 public:
  // `context` is the last prompt token: decoding it together with the new tokens keeps
  // their leading spaces (SentencePiece drops a leading space at the start of a decode).
  StreamDecoder(const Tokenizer& tokenizer, std::optional<int64_t> context);
  // Adds a token; returns the newly completed text (possibly empty).
  std::string push(int64_t token);
  // Whatever is still held back (an incomplete character at the end).
  std::string finish();
  const std::string& text() const { return emitted_; }

 private:
  std::string decoded() const;
  const Tokenizer& tokenizer_;
  std::vector<int64_t> ids_;
  size_t context_tokens_ = 0;
  std::string context_text_;
  std::string emitted_;
};

}  // namespace echokv
