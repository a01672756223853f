// Process-wide runtime settings: LibTorch thread count, device and dtype parsing.
#pragma once
#include <string>
#include <torch/torch.h>

namespace echokv {

// Sets LibTorch's intra-op thread count. threads <= 0 means: ECHOKV_THREADS if set,
// else all hardware cores. Returns the count in effect.
int configure_threads(int threads = 0);

// "cpu", "cuda", "cuda:1". Errors clearly when CUDA is asked for but LibTorch has none.
torch::Device parse_device(const std::string& name);

// "float32"/"f32", "bfloat16"/"bf16", "float16"/"f16". On CPU, float16 compute is refused
// (LibTorch 1.13 has no CPU half GEMM); use float32 or bfloat16.
torch::ScalarType parse_compute_dtype(const std::string& name, const torch::Device& device);

std::string dtype_name(torch::ScalarType dtype);

}  // namespace echokv
