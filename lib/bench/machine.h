// Machine facts measured in the same run as a benchmark, so results read as a fraction of
// what this machine can do.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace echokv {

// GEMM throughput (n x n x n) on `device` in `dtype`, best of `reps` timed runs.
double measure_gemm_gflops(int64_t n = 1024, int reps = 5, torch::Device device = torch::kCPU,
                           torch::ScalarType dtype = torch::kFloat32);
// float32 matrix-vector throughput in GB/s of matrix read ([rows, cols] x [cols]): the
// ceiling for batch-1 decode, which streams every weight once per token.
double measure_gemv_gb_per_s(int64_t rows = 16384, int64_t cols = 1024, int reps = 10);
// What every bench JSON records about where it ran: date (UTC), commit, host, CPU model,
// LibTorch version and CUDA, BLAS library and core, device, compute dtype, threads.
nlohmann::json bench_environment(const torch::Device& device, torch::ScalarType dtype, int threads);

// Peak resident set size of this process so far (VmHWM), MiB.
double peak_rss_mib();
// Current resident set size (VmRSS), MiB.
double current_rss_mib();
// Resets the peak (VmHWM) to the current RSS via /proc/self/clear_refs; false if unsupported.
bool reset_peak_rss();

}  // namespace echokv
