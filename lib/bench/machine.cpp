#include "bench/machine.h"

#include <cstdlib>

#include <chrono>
#include <fstream>
#include <string>
#include <ctime>
#include <unistd.h>

#include <torch/torch.h>

#include "core/blas_core.h"
#include "core/runtime.h"
#include "core/torch_compat.h"

namespace echokv {

double measure_gemm_gflops(int64_t n, int reps, torch::Device device, torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  auto opt = torch::TensorOptions().device(device).dtype(dtype);
  auto a = torch::randn({n, n}, opt);
  auto b = torch::randn({n, n}, opt);
  auto c = torch::mm(a, b);  // warm-up
  compat::synchronize(device);
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    torch::mm_out(c, a, b);
    compat::synchronize(device);
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

namespace {
std::string command_line_output(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof(buf), p)) out += buf;
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}
}  // namespace

nlohmann::json bench_environment(const torch::Device& device, torch::ScalarType dtype, int threads) {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  // The commit of the source tree the binary sits in (build/bin -> repository), if any.
  const std::string commit =
      command_line_output("git -C \"$(dirname \"$(readlink -f /proc/" + std::to_string(getpid()) +
                          "/exe)\")\" rev-parse --short=12 HEAD 2>/dev/null");
  // Where git cannot answer (a chroot without git), the commit the caller names.
  const char* named = std::getenv("ECHOKV_COMMIT");
  const std::string known = !commit.empty() ? commit : (named && *named ? std::string(named) : std::string("unknown"));
  nlohmann::json env = {{"date", date},
                        {"commit", known},
                        {"host", host},
                        {"cpu", cpu_model()},
                        {"torch", compat::torch_version()},
                        {"torch_cuda", compat::built_with_cuda()},
                        {"fused_attention", compat::kHasFusedAttention},
                        {"blas", blas_info_json()},
                        {"device", device.str()},
                        {"dtype", dtype_name(dtype)},
                        {"threads", threads}};
  return env;
}

double peak_rss_mib() { return status_field_mib("VmHWM:"); }
double current_rss_mib() { return status_field_mib("VmRSS:"); }

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  return bool(f);
}

}  // namespace echokv
