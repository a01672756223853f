// difflib.SequenceMatcher(None, a, b).ratio() on Unicode code points, including difflib's
// "autojunk" heuristic (when b has >= 200 elements, elements occurring more than
// len(b)/100 + 1 times are not used to seed matches, but matches still extend over them).
#pragma once
#include <string>

namespace echokv {

double sequence_matcher_ratio(const std::u32string& a, const std::u32string& b);

// fuzzywuzzy fuzz.ratio (pure-Python path): 100 if equal, 0 if either is empty, otherwise
// round-half-even of 100 * ratio.
int fuzz_ratio(const std::string& a, const std::string& b);

}  // namespace echokv
