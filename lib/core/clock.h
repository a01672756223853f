// Wall-clock seconds on a monotonic clock, for timing jobs, benchmarks and samples.
#pragma once
#include <chrono>

namespace echokv {

inline double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace echokv
