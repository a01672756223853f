#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenizer.h"

#include <mutex>

#include <pcre2.h>

#include "core/error.h"

namespace echokv {

struct RegexSplitter::Impl {
  pcre2_code* code = nullptr;
  pcre2_match_data* match = nullptr;
  mutable std::mutex mutex;  // match data is per-call scratch
  ~Impl() {
    if (match) pcre2_match_data_free(match);
    if (code) pcre2_code_free(code);
  }
};

RegexSplitter::RegexSplitter(const std::string& pattern) : impl_(std::make_unique<Impl>()), pattern_(pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                              &error, &offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    throw Error("pre-tokenizer regex does not compile at offset " + std::to_string(offset) + ": " +
                reinterpret_cast<char*>(message));
  }
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
  impl_->match = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
}

RegexSplitter::~RegexSplitter() = default;

std::vector<std::string_view> RegexSplitter::split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  PCRE2_SIZE start = 0;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  // PCRE2 validates the whole subject's UTF-8 on every call unless told not to; validate on
  // the first call only (later calls start inside the same, already checked, subject).
  uint32_t options = 0;
  while (start < text.size()) {
    const int rc = pcre2_match(impl_->code, subject, text.size(), start, options, impl_->match, nullptr);
    options = PCRE2_NO_UTF_CHECK;
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      throw Error(std::string("pre-tokenizer regex failed: ") + reinterpret_cast<char*>(message));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(impl_->match);
    if (ov[1] == ov[0]) {  // empty match: step one character
      start = ov[1] + 1;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
      continue;
    }
    pieces.push_back(text.substr(ov[0], ov[1] - ov[0]));
    start = ov[1];
  }
  return pieces;
}

}  // namespace echokv
