#include "eval/sample_rng.h"

#include <stdexcept>
#include <unordered_set>

namespace echokv {

namespace {
uint64_t fnv1a(const std::string& s, uint64_t h) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}
}  // namespace

SampleRng::SampleRng(uint64_t seed, const std::string& label) : engine_(fnv1a(label, 1469598103934665603ULL ^ (seed * 0x9E3779B97F4A7C15ULL))) {}

uint64_t SampleRng::below(uint64_t n) {
  if (n == 0) throw std::invalid_argument("SampleRng::below(0)");
  // Rejection sampling: unbiased and platform-independent.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = engine_();
  while (x >= limit);
  return x % n;
}

int64_t SampleRng::randint(int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
}

double SampleRng::uniform01() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

std::vector<size_t> SampleRng::sample_indices(size_t n, size_t k) {
  if (k > n) throw std::invalid_argument("sample larger than population");
  std::vector<size_t> out;
  out.reserve(k);
  if (k * 4 < n) {
    std::unordered_set<size_t> seen;
    while (out.size() < k) {
      const size_t i = below(n);
      if (seen.insert(i).second) out.push_back(i);
    }
  } else {
    std::vector<size_t> pool(n);
    for (size_t i = 0; i < n; ++i) pool[i] = i;
    for (size_t i = 0; i < k; ++i) {
      const size_t j = i + below(n - i);
      std::swap(pool[i], pool[j]);
      out.push_back(pool[i]);
    }
  }
  return out;
}

}  // namespace echokv
