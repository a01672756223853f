#define PCRE2_CODE_UNIT_WIDTH 8
#include "eval/py_text.h"

#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <cwctype>
#include <locale.h>
#include <map>
#include <memory>
#include <mutex>

#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace echokv::py {

std::u32string to_u32(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = utf8::valid_char_length(s.substr(i));
    if (n == 0) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    const auto b0 = static_cast<unsigned char>(s[i]);
    char32_t cp = 0;
    if (n == 1) {
      cp = b0;
    } else {
      cp = b0 & (0xFF >> (n + 1));
      for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    out.push_back(cp);
    i += n;
  }
  return out;
}

std::string to_utf8(const std::u32string& text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) out += utf8::encode_codepoint(static_cast<uint32_t>(c));
  return out;
}

bool is_space(char32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D:
    case 0x1C: case 0x1D: case 0x1E: case 0x1F: case 0x20:
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029:
    case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

namespace {

locale_t utf8_locale() {
  static locale_t loc = [] {
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
    if (!l) l = newlocale(LC_CTYPE_MASK, "en_US.UTF-8", static_cast<locale_t>(0));
    return l;
  }();
  return loc;
}

}  // namespace

std::string lower(std::string_view text) {
  const locale_t loc = utf8_locale();
  std::u32string out;
  for (char32_t c : to_u32(text)) {
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    } else if (c == 0x130) {  // 'İ' lowers to 'i' + combining dot above in Python
      out.push_back(U'i');
      out.push_back(0x307);
    } else if (loc) {
      out.push_back(static_cast<char32_t>(towlower_l(static_cast<wint_t>(c), loc)));
    } else {
      out.push_back(c);
    }
  }
  return to_utf8(out);
}

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> parts;
  std::u32string current;
  bool in_word = false;
  for (char32_t c : to_u32(text)) {
    if (is_space(c)) {
      if (in_word) parts.push_back(to_utf8(current));
      current.clear();
      in_word = false;
    } else {
      current.push_back(c);
      in_word = true;
    }
  }
  if (in_word) parts.push_back(to_utf8(current));
  return parts;
}

std::vector<std::string> split_on(std::string_view text, std::string_view sep) {
  if (sep.empty()) throw Error("split_on: empty separator");
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t at = text.find(sep, start);
    if (at == std::string_view::npos) {
      parts.emplace_back(text.substr(start));
      return parts;
    }
    parts.emplace_back(text.substr(start, at - start));
    start = at + sep.size();
  }
}

std::string strip(std::string_view text) {
  const std::u32string u = to_u32(text);
  size_t b = 0, e = u.size();
  while (b < e && is_space(u[b])) ++b;
  while (e > b && is_space(u[e - 1])) --e;
  return to_utf8(u.substr(b, e - b));
}

std::string lstrip_chars(std::string_view text, std::string_view chars) {
  size_t b = 0;
  while (b < text.size() && chars.find(text[b]) != std::string_view::npos) ++b;
  return std::string(text.substr(b));
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

namespace {

struct Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() {
    if (code) pcre2_code_free(code);
  }
};

const Compiled& compiled(const std::string& pattern) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Compiled>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[pattern];
  if (!slot) {
    auto c = std::make_unique<Compiled>();
    int error = 0;
    PCRE2_SIZE offset = 0;
    c->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                            &error, &offset, nullptr);
    if (!c->code) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      throw Error("regex '" + pattern + "' does not compile: " + reinterpret_cast<char*>(message));
    }
    slot = std::move(c);
  }
  return *slot;
}

// Calls on_match(whole_begin, whole_end, group_begin, group_end) for each non-overlapping match.
template <typename F>
void for_each_match(const std::string& pattern, const std::string& subject, F on_match) {
  const Compiled& c = compiled(pattern);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(c.code, nullptr);
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> guard(md, pcre2_match_data_free);
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t start = 0;
  uint32_t options = 0;
  while (start <= subject.size()) {
    const int rc = pcre2_match(c.code, s, subject.size(), start, options, md, nullptr);
    options = PCRE2_NO_UTF_CHECK;
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc < 0) throw Error("regex '" + pattern + "' failed on the text");
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const bool has_group = rc >= 2 && ov[2] != PCRE2_UNSET;
    on_match(ov[0], ov[1], has_group ? ov[2] : ov[0], has_group ? ov[3] : ov[1]);
    if (ov[1] == ov[0]) {
      start = ov[1] + 1;
      while (start < subject.size() && (static_cast<unsigned char>(subject[start]) & 0xC0) == 0x80) ++start;
    } else {
      start = ov[1];
    }
  }
}

}  // namespace

std::vector<std::string> findall(const std::string& pattern, std::string_view text) {
  const std::string subject = utf8::sanitize(text);
  std::vector<std::string> out;
  for_each_match(pattern, subject, [&](size_t, size_t, size_t gb, size_t ge) { out.push_back(subject.substr(gb, ge - gb)); });
  return out;
}

std::string sub(const std::string& pattern, std::string_view replacement, std::string_view text) {
  const std::string subject = utf8::sanitize(text);
  std::string out;
  size_t last = 0;
  for_each_match(pattern, subject, [&](size_t b, size_t e, size_t, size_t) {
    out.append(subject, last, b - last);
    out += replacement;
    last = e;
  });
  out.append(subject, last, std::string::npos);
  return out;
}

double round_to(double x, int ndigits) {
  // printf rounds the exact binary value half-to-even, as Python's round() does.
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", ndigits, x);
  return std::strtod(buf, nullptr);
}


namespace {

void append_utf8(std::string& out, uint32_t cp) {
  out += to_utf8(std::u32string(1, static_cast<char32_t>(cp)));
}

}  // namespace

std::vector<std::string> parse_str_list_literal(std::string_view t) {
  size_t i = 0;
  auto skip = [&] {
    while (i < t.size() && (t[i] == ' ' || t[i] == '\n' || t[i] == '\t' || t[i] == '\r')) ++i;
  };
  auto bad = [&](const std::string& why) -> std::vector<std::string> {
    throw Error("not a Python list of strings (" + why + "): " + std::string(t.substr(0, 80)));
  };
  auto read_string = [&]() -> std::string {
    const char q = t[i++];
    std::string out;
    while (i < t.size() && t[i] != q) {
      char c = t[i++];
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i >= t.size()) break;
      c = t[i++];
      auto hex = [&](int n) {
        if (i + n > t.size()) throw Error("truncated escape in a Python string literal");
        const uint32_t v = static_cast<uint32_t>(std::stoul(std::string(t.substr(i, n)), nullptr, 16));
        i += n;
        return v;
      };
      switch (c) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case 'x': append_utf8(out, hex(2)); break;
        case 'u': append_utf8(out, hex(4)); break;
        case 'U': append_utf8(out, hex(8)); break;
        default: out.push_back(c);  // \\ \' \"
      }
    }
    if (i >= t.size()) throw Error("unclosed string in a Python list literal: " + std::string(t.substr(0, 80)));
    ++i;
    return out;
  };
  skip();
  if (i < t.size() && (t[i] == '\'' || t[i] == '"')) {
    auto one = read_string();
    skip();
    if (i != t.size()) return bad("text after the string");
    return {one};
  }
  if (i >= t.size() || t[i] != '[') return bad("no '['");
  ++i;
  std::vector<std::string> out;
  skip();
  if (i < t.size() && t[i] == ']') {
    ++i;
  } else {
    while (true) {
      skip();
      if (i >= t.size() || (t[i] != '\'' && t[i] != '"')) return bad("an element is not a quoted string");
      out.push_back(read_string());
      skip();
      if (i < t.size() && t[i] == ',') {
        ++i;
        skip();
        if (i < t.size() && t[i] == ']') {
          ++i;
          break;
        }
        continue;
      }
      if (i < t.size() && t[i] == ']') {
        ++i;
        break;
      }
      return bad("expected ',' or ']'");
    }
  }
  skip();
  if (i != t.size()) return bad("text after ']'");
  return out;
}

}  // namespace echokv::py
