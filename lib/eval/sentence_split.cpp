#include "eval/sentence_split.h"

#include <cctype>
#include <set>

#include "eval/py_text.h"

namespace echokv {
namespace {

bool is_abbreviation(const std::string& word) {
  static const std::set<std::string> abbreviations = {
      "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "inc", "ltd", "co", "corp",
      "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "no", "vol", "fig", "u.s"};
  std::string w;
  for (char c : word)
    if (c != '(' && c != '"' && c != '\'') w.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  while (!w.empty() && w.back() == '.') w.pop_back();
  if (abbreviations.count(w)) return true;
  return w.size() == 1 && std::isalpha(static_cast<unsigned char>(w[0]));  // initials: "J. Smith"
}

bool ends_sentence(const std::string& word) {
  size_t end = word.size();
  while (end > 0 && (word[end - 1] == '"' || word[end - 1] == '\'' || word[end - 1] == ')' || word[end - 1] == ']'))
    --end;
  if (end == 0) return false;
  const char c = word[end - 1];
  return c == '.' || c == '!' || c == '?';
}

}  // namespace

std::vector<std::string> split_sentences(const std::string& text) {
  const auto words = py::split(text);
  std::vector<std::string> sentences;
  std::string current;
  for (size_t i = 0; i < words.size(); ++i) {
    if (!current.empty()) current += ' ';
    current += words[i];
    if (!ends_sentence(words[i])) continue;
    if (i + 1 < words.size()) {
      const unsigned char next = static_cast<unsigned char>(words[i + 1][0]);
      if (std::islower(next)) continue;
      const char last = words[i].back();
      if ((last == '.' ) && is_abbreviation(words[i])) continue;
    }
    sentences.push_back(current);
    current.clear();
  }
  if (!current.empty()) sentences.push_back(current);
  return sentences;
}

}  // namespace echokv
