#include "core/torch_compat.h"

#include <torch/version.h>

#include "core/error.h"
#include "echokv_build_config.h"

#ifdef ECHOKV_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace echokv::compat {

std::string torch_version() { return TORCH_VERSION; }

bool built_with_cuda() {
#ifdef ECHOKV_WITH_CUDA
  return true;
#else
  return false;
#endif
}

torch::Tensor fused_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& allowed, bool causal, double scale) {
#if TORCH_VERSION_MAJOR >= 3 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  if (causal && allowed.defined()) throw Error("fused_attention: a causal call takes no explicit mask");
  c10::optional<at::Tensor> mask;
  if (allowed.defined()) mask = allowed;
  return at::scaled_dot_product_attention(q, k, v, mask, /*dropout_p=*/0.0, causal, scale);
#else
  (void)q, (void)k, (void)v, (void)allowed, (void)causal, (void)scale;
  throw Error("fused_attention: LibTorch " + torch_version() + " has no scaled_dot_product_attention with a scale");
#endif
}

bool fused_attention_pays(const torch::Tensor& q) {
  if (!kHasFusedAttention) return false;
  return !q.is_cpu() || q.scalar_type() == torch::kFloat32 || q.scalar_type() == torch::kFloat64;
}

void synchronize(const torch::Device& device) {
#ifdef ECHOKV_WITH_CUDA
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
#else
  (void)device;
#endif
}

int64_t device_peak_allocated_bytes(const torch::Device& device) {
#ifdef ECHOKV_WITH_CUDA
  if (!device.is_cuda()) return -1;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
  return stats.allocated_bytes[0].peak;  // index 0: the aggregate over pool kinds (1.13 and 2.x)
#else
  (void)device;
  return -1;
#endif
}

void reset_device_peak(const torch::Device& device) {
#ifdef ECHOKV_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
#else
  (void)device;
#endif
}

}  // namespace echokv::compat
