// Splits English prose into sentences, standing in for NLTK's Punkt `sent_tokenize` (which
// RULER uses on the essay haystack): a sentence ends at ".", "!" or "?" (plus closing quotes
// or brackets) followed by whitespace, except after common abbreviations, single-letter
// initials, or when the next word starts in lower case. Sentences are returned trimmed.
#pragma once
#include <string>
#include <vector>

namespace echokv {

std::vector<std::string> split_sentences(const std::string& text);

}  // namespace echokv
