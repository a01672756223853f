#include "core/runtime.h"

#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "core/blas_core.h"
#include "core/error.h"

namespace echokv {

void prepare_process(int argc, char** argv) {
  (void)argc;
  bool reexec = false;
  if (!std::getenv("OMP_WAIT_POLICY")) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    reexec = true;
  }
  if (choose_blas_core_before_exec()) reexec = true;
  if (!reexec && verify_chosen_blas_core()) reexec = true;
  if (!reexec) return;
  char path[4096];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return;  // cannot re-exec: run with the default policy
  path[n] = '\0';
  ::execv(path, argv);
  // execv only returns on failure: continue in this process.
}

int configure_threads(int threads) {
  if (threads <= 0) {
    if (const char* env = std::getenv("ECHOKV_THREADS")) threads = std::atoi(env);
  }
  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  if (threads <= 0) threads = 1;
  at::set_num_threads(threads);
  return at::get_num_threads();
}

torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      throw Error("device '" + name + "': this LibTorch build has no usable CUDA device");
    return torch::Device(name);
  }
  throw Error("device '" + name + "': expected cpu, cuda or cuda:N");
}

torch::ScalarType parse_compute_dtype(const std::string& name, const torch::Device& device) {
  if (name == "float32" || name == "f32" || name == "fp32") return torch::kFloat32;
  if (name == "bfloat16" || name == "bf16") return torch::kBFloat16;
  if (name == "float16" || name == "f16" || name == "fp16") {
    if (device.is_cpu())
      throw Error("dtype float16: no half-precision GEMM on CPU in this LibTorch; use float32 or bfloat16");
    return torch::kFloat16;
  }
  throw Error("dtype '" + name + "': expected float32, bfloat16 or float16");
}

std::string dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    case torch::kFloat64: return "float64";
    default: return c10::toString(dtype);
  }
}

}  // namespace echokv
