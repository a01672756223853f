#include "bench/machine.h"

#include <chrono>
#include <fstream>
#include <string>

#include <torch/torch.h>

namespace echokv {

double measure_gemm_gflops(int64_t n, int reps) {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({n, n});
  auto b = torch::randn({n, n});
  auto c = torch::mm(a, b);  // warm-up
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    torch::mm_out(c, a, b);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * n * n / best / 1e9;
}

double measure_gemv_gb_per_s(int64_t rows, int64_t cols, int reps) {
  torch::NoGradGuard no_grad;
  auto w = torch::randn({rows, cols});
  auto x = torch::randn({1, cols});
  auto y = torch::linear(x, w);  // warm-up
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    y = torch::linear(x, w);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return static_cast<double>(rows * cols * 4) / best / 1e9;
}

namespace {
double status_field_mib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(key.size())) / 1024.0;  // kB -> MiB
  return -1;
}
}  // namespace

double peak_rss_mib() { return status_field_mib("VmHWM:"); }
double current_rss_mib() { return status_field_mib("VmRSS:"); }

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  return bool(f);
}

}  // namespace echokv
