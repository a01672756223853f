// Python str semantics the official benchmark scorers rely on, in UTF-8: lower(), split()
// on Unicode whitespace, strip(), re.findall / re.sub with Unicode \d and \b (PCRE2 UCP).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace echokv::py {

std::u32string to_u32(std::string_view utf8);   // invalid bytes become U+FFFD
std::string to_utf8(const std::u32string& text);

bool is_space(char32_t c);                      // str.isspace()
std::string lower(std::string_view text);       // str.lower() (full mapping for U+0130)
std::vector<std::string> split(std::string_view text);  // str.split()
std::vector<std::string> split_on(std::string_view text, std::string_view sep);  // str.split(sep)
std::string strip(std::string_view text);       // str.strip()
std::string lstrip_chars(std::string_view text, std::string_view chars);  // str.lstrip(chars), ASCII chars
std::string join(const std::vector<std::string>& parts, std::string_view sep);
bool contains(std::string_view haystack, std::string_view needle);  // `needle in haystack`

// re.findall(pattern, text) for a pattern with at most one group (the group when present).
std::vector<std::string> findall(const std::string& pattern, std::string_view text);
// re.sub(pattern, replacement, text) with a literal replacement.
std::string sub(const std::string& pattern, std::string_view replacement, std::string_view text);

// Python's round(x, ndigits): round half to even on the exact binary value.
double round_to(double x, int ndigits);
// A Python literal list of strings as repr() / str() writes it ("['a', \"b's\"]", escapes
// \\ \' \" \n \t \r \xhh \uhhhh \Uhhhhhhhh); a bare string gives a one-element list.
// Throws Error on anything else.
std::vector<std::string> parse_str_list_literal(std::string_view text);

}  // namespace echokv::py
