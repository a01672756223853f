// UTF-8 helpers shared by the tokenizers.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace echokv::utf8 {

// Length in bytes of the valid UTF-8 character at the start of `s`, or 0 if the bytes
// there are not a valid, complete, shortest-form character.
size_t valid_char_length(std::string_view s);

// Replaces every byte that is not part of a valid character with U+FFFD.
std::string sanitize(std::string_view s);

// Length of the longest prefix of `s` that ends on a character boundary (for streaming:
// the rest may be an incomplete character still arriving).
size_t complete_prefix_length(std::string_view s);

inline constexpr const char* kReplacement = "\xEF\xBF\xBD";

std::string encode_codepoint(uint32_t cp);

}  // namespace echokv::utf8
