#include "eval/sequence_matcher.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "eval/py_text.h"

namespace echokv {
namespace {

struct Block {
  size_t i, j, k;
};

class Matcher {
 public:
  Matcher(const std::u32string& a, const std::u32string& b) : a_(a), b_(b) {
    for (size_t j = 0; j < b.size(); ++j) b2j_[b[j]].push_back(j);
    const size_t n = b.size();
    if (n >= 200) {  // autojunk
      const size_t ntest = n / 100 + 1;
      for (auto it = b2j_.begin(); it != b2j_.end();) {
        if (it->second.size() > ntest) it = b2j_.erase(it);
        else ++it;
      }
    }
  }

  // difflib's find_longest_match with an empty junk set (popular elements only fail to
  // seed; the extension loops still run over them).
  Block find_longest_match(size_t alo, size_t ahi, size_t blo, size_t bhi) const {
    size_t besti = alo, bestj = blo, bestsize = 0;
    std::unordered_map<size_t, size_t> j2len, newj2len;
    static const std::vector<size_t> nothing;
    for (size_t i = alo; i < ahi; ++i) {
      newj2len.clear();
      auto found = b2j_.find(a_[i]);
      const std::vector<size_t>& js = found == b2j_.end() ? nothing : found->second;
      for (size_t j : js) {
        if (j < blo) continue;
        if (j >= bhi) break;
        size_t prev = 0;
        if (j > 0) {
          auto p = j2len.find(j - 1);
          if (p != j2len.end()) prev = p->second;
        }
        const size_t k = prev + 1;
        newj2len[j] = k;
        if (k > bestsize) {
          besti = i - k + 1;
          bestj = j - k + 1;
          bestsize = k;
        }
      }
      std::swap(j2len, newj2len);
    }
    while (besti > alo && bestj > blo && a_[besti - 1] == b_[bestj - 1]) {
      --besti;
      --bestj;
      ++bestsize;
    }
    while (besti + bestsize < ahi && bestj + bestsize < bhi && a_[besti + bestsize] == b_[bestj + bestsize]) ++bestsize;
    return {besti, bestj, bestsize};
  }

  size_t matched_elements() const {
    size_t total = 0;
    std::vector<std::tuple<size_t, size_t, size_t, size_t>> queue{{0, a_.size(), 0, b_.size()}};
    while (!queue.empty()) {
      auto [alo, ahi, blo, bhi] = queue.back();
      queue.pop_back();
      const Block m = find_longest_match(alo, ahi, blo, bhi);
      if (m.k == 0) continue;
      total += m.k;
      if (alo < m.i && blo < m.j) queue.emplace_back(alo, m.i, blo, m.j);
      if (m.i + m.k < ahi && m.j + m.k < bhi) queue.emplace_back(m.i + m.k, ahi, m.j + m.k, bhi);
    }
    return total;
  }

 private:
  const std::u32string& a_;
  const std::u32string& b_;
  std::unordered_map<char32_t, std::vector<size_t>> b2j_;
};

}  // namespace

double sequence_matcher_ratio(const std::u32string& a, const std::u32string& b) {
  const size_t total = a.size() + b.size();
  if (total == 0) return 1.0;
  return 2.0 * static_cast<double>(Matcher(a, b).matched_elements()) / static_cast<double>(total);
}

int fuzz_ratio(const std::string& a, const std::string& b) {
  if (a == b) return 100;
  if (a.empty() || b.empty()) return 0;
  const double r = 100.0 * sequence_matcher_ratio(py::to_u32(a), py::to_u32(b));
  return static_cast<int>(std::nearbyint(r));  // default rounding mode: half to even, like Python's round()
}

}  // namespace echokv
