// Rotary position embedding, HF semantics: rotate_half on [x1 | x2] halves, frequencies
// inv_freq[i] = theta^(-2i/D), optionally rescaled (linear, llama3).
#pragma once
#include <torch/torch.h>

#include "model/config.h"

namespace echokv {

// [D/2] float32 inverse frequencies after rope_scaling, exactly as HF computes them.
torch::Tensor rope_inverse_frequencies(const ModelConfig& config);

class Rope {
 public:
  Rope(const ModelConfig& config, torch::Device device);
  // x: [B, H, T, D]; positions: [T] int64 (any device). Returns x rotated, same dtype.
  torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& positions) const;
  // cos, sin: [T, D] float32 for the given positions.
  std::pair<torch::Tensor, torch::Tensor> cos_sin(const torch::Tensor& positions) const;
  const torch::Tensor& inverse_frequencies() const { return inv_freq_; }

 private:
  torch::Tensor inv_freq_;  // [D/2] float32 on the model's device
};

torch::Tensor rotate_half(const torch::Tensor& x);

}  // namespace echokv
