// The one place where LibTorch versions (1.13 and 2.x) and builds (CPU-only or CUDA) differ.
// Everything else calls these and never tests TORCH_VERSION_* or CUDA macros itself.
#pragma once
#include <cstdint>
#include <string>

#include <torch/torch.h>

namespace echokv::compat {

// at::scaled_dot_product_attention with an explicit scale exists from LibTorch 2.1 on.
#if TORCH_VERSION_MAJOR >= 3 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
inline constexpr bool kHasFusedAttention = true;
#else
inline constexpr bool kHasFusedAttention = false;
#endif

// "1.13.0", "2.6.0": the LibTorch this binary was compiled against.
std::string torch_version();
// Whether this binary was built against a LibTorch with CUDA (libc10_cuda linked).
bool built_with_cuda();

// Fused attention (flash / memory-efficient / math, LibTorch chooses) with an explicit
// scale. q [B, H, Tq, D], k and v [B, H, n, D] on one device and dtype; `allowed` a boolean
// mask broadcastable to [B, H, Tq, n] (true = may attend) or undefined; `causal` applies the
// top-left causal mask instead (then `allowed` must be undefined). Returns [B, H, Tq, D].
// Throws when kHasFusedAttention is false: callers test the constant first.
torch::Tensor fused_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& allowed, bool causal, double scale);

// Whether the fused kernel is the one to use for queries like q: it exists, and q is not a
// CPU half-precision tensor — LibTorch 2.6's CPU kernel in bfloat16 prefills ~5x slower than
// the plain path (benchmarks/README.md, "LibTorch 1.13 vs 2.6"); CUDA and float32 CPU gain.
bool fused_attention_pays(const torch::Tensor& q);

// Waits for queued work on `device` (no-op on CPU), so wall-clock timings are honest.
void synchronize(const torch::Device& device);

// Peak bytes held by the CUDA caching allocator on `device` since the last reset, or -1
// where it cannot be read (CPU, or a LibTorch without CUDA).
int64_t device_peak_allocated_bytes(const torch::Device& device);
void reset_device_peak(const torch::Device& device);

}  // namespace echokv::compat
