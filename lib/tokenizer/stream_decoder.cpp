#include "tokenizer/stream_decoder.h"

#include "tokenizer/utf8.h"

namespace echokv {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, std::optional<int64_t> context) : tokenizer_(tokenizer) {
  if (context && !tokenizer.is_special(*context)) {
    ids_.push_back(*context);
    context_tokens_ = 1;
    context_text_ = tokenizer.decode(ids_);
  }
}

std::string StreamDecoder::decoded() const {
  std::string all = tokenizer_.decode(ids_);
  if (all.compare(0, context_text_.size(), context_text_) == 0) return all.substr(context_text_.size());
  return tokenizer_.decode(std::vector<int64_t>(ids_.begin() + context_tokens_, ids_.end()));
}

std::string StreamDecoder::push(int64_t token) {
  ids_.push_back(token);
  std::string now = decoded();
  // Hold back a trailing replacement character: it may be a partial multi-byte character
  // whose remaining bytes arrive with the next token.
  size_t stable = now.size();
  const std::string repl = utf8::kReplacement;
  while (stable >= repl.size() && now.compare(stable - repl.size(), repl.size(), repl) == 0) stable -= repl.size();
  stable = utf8::complete_prefix_length(std::string_view(now).substr(0, stable));
  if (stable <= emitted_.size() || now.compare(0, emitted_.size(), emitted_) != 0) return "";
  std::string fresh = now.substr(emitted_.size(), stable - emitted_.size());
  emitted_ += fresh;
  return fresh;
}

std::string StreamDecoder::finish() {
  std::string now = decoded();
  if (now.size() <= emitted_.size() || now.compare(0, emitted_.size(), emitted_) != 0) return "";
  std::string rest = now.substr(emitted_.size());
  emitted_ = now;
  return rest;
}

}  // namespace echokv
