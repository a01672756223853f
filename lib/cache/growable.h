#pragma once
// Amortised appends for cache buffers: capacity doubles, the used prefix is copied once.
#include <algorithm>
#include <cstdint>

#include <torch/torch.h>

namespace echokv {

// `capacity` (at least 1) doubled until it holds `needed` entries.
inline int64_t doubled_capacity(int64_t capacity, int64_t needed) {
  int64_t cap = std::max<int64_t>(1, capacity);
  while (cap < needed) cap *= 2;
  return cap;
}

// A buffer whose dimension `dim` has `capacity` entries, holding the first `used` entries of
// `buffer` along it (the rest uninitialised). `buffer` itself if it is already that large.
inline torch::Tensor resized_along(const torch::Tensor& buffer, int64_t dim, int64_t used, int64_t capacity) {
  if (buffer.size(dim) >= capacity) return buffer;
  auto sizes = buffer.sizes().vec();
  sizes[static_cast<size_t>(dim)] = capacity;
  auto bigger = torch::empty(sizes, buffer.options());
  bigger.narrow(dim, 0, used).copy_(buffer.narrow(dim, 0, used));
  return bigger;
}

// `buffer` grown (by doubling) so that dimension `dim` holds `needed` entries.
inline torch::Tensor grown_along(const torch::Tensor& buffer, int64_t dim, int64_t used, int64_t needed) {
  if (needed <= buffer.size(dim)) return buffer;
  return resized_along(buffer, dim, used, doubled_capacity(buffer.size(dim), needed));
}

}  // namespace echokv
