#include "eval/rouge.h"

#include <set>
#include <vector>

#include "eval/py_text.h"

namespace echokv {
namespace {

using Words = std::vector<std::string>;

// [" ".join(s.split()) for s in text.split(".") if len(s) > 0]
std::vector<std::string> sentences(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& s : py::split_on(text, "."))
    if (!s.empty()) out.push_back(py::join(py::split(s), " "));
  return out;
}

Words words_of(const std::string& sentence) { return py::split_on(sentence, " "); }

// The LCS of x (reference words) and y (hypothesis words) as the reference reconstructs it:
// DP table, then walk back from the end preferring (i-1, j) only when strictly longer.
Words recon_lcs(const Words& x, const Words& y) {
  const size_t n = x.size(), m = y.size();
  std::vector<std::vector<uint32_t>> t(n + 1, std::vector<uint32_t>(m + 1, 0));
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j)
      t[i][j] = x[i - 1] == y[j - 1] ? t[i - 1][j - 1] + 1 : std::max(t[i - 1][j], t[i][j - 1]);
  Words out;
  size_t i = n, j = m;
  while (i > 0 && j > 0) {
    if (x[i - 1] == y[j - 1]) {
      out.push_back(x[i - 1]);
      --i;
      --j;
    } else if (t[i - 1][j] > t[i][j - 1]) {
      --i;
    } else {
      --j;
    }
  }
  return out;  // reversed order; only the set of word types is used
}

}  // namespace

double rouge_l_f(const std::string& hypothesis, const std::string& reference) {
  const auto hyp = sentences(hypothesis);
  const auto ref = sentences(reference);
  if (hyp.empty() || ref.empty()) return 0.0;  // the reference raises ValueError; LongBench scores 0
  std::set<std::string> ref_types, hyp_types;
  for (const auto& s : ref)
    for (auto& w : words_of(s)) ref_types.insert(w);
  std::vector<Words> hyp_words;
  for (const auto& s : hyp) {
    hyp_words.push_back(words_of(s));
    for (auto& w : hyp_words.back()) hyp_types.insert(w);
  }
  std::set<std::string> lcs_union;
  for (const auto& r : ref) {
    const Words rw = words_of(r);
    for (const auto& hw : hyp_words)
      for (auto& w : recon_lcs(rw, hw)) lcs_union.insert(w);
  }
  const double llcs = static_cast<double>(lcs_union.size());
  const double r_lcs = llcs / static_cast<double>(ref_types.size());
  const double p_lcs = llcs / static_cast<double>(hyp_types.size());
  return 2.0 * ((p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8));
}

}  // namespace echokv
