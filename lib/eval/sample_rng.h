// A deterministic random source with the few Python `random` operations the benchmark
// generators use (randint, choice, sample, shuffle, getrandbits). Same seed, same stream on
// every platform (no std:: distributions, whose algorithms are implementation-defined).
// Not CPython's stream: generated samples are deterministic, not identical to RULER's.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace echokv {

class SampleRng {
 public:
  explicit SampleRng(uint64_t seed) : engine_(seed) {}
  // Seed derived from a base seed and a label (e.g. task name and length).
  SampleRng(uint64_t seed, const std::string& label);

  uint64_t bits64() { return engine_(); }
  uint64_t below(uint64_t n);                        // uniform in [0, n), n > 0
  int64_t randint(int64_t lo, int64_t hi);           // inclusive, like random.randint
  double uniform01();                                // [0, 1)
  template <typename T>
  const T& choice(const std::vector<T>& v) { return v.at(below(v.size())); }
  // k distinct indices of [0, n) in selection order (random.sample(range(n), k)).
  std::vector<size_t> sample_indices(size_t n, size_t k);
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace echokv
