// Process-wide runtime settings: LibTorch thread count, device and dtype parsing.
#pragma once
#include <string>
#include <torch/torch.h>

namespace echokv {

// Call first in main(). OpenMP workers that spin after each parallel region starve
// OpenBLAS's own threads on small machines (measured: training 1.6x slower, 10x the system
// time). libgomp reads OMP_WAIT_POLICY only at load time, so when it is unset the process
// sets it to PASSIVE and re-executes itself once. In the same re-execution it selects the
// OpenBLAS kernels the CPU supports when OpenBLAS fell back to generic ones (core/blas_core.h).
void prepare_process(int argc, char** argv);

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
