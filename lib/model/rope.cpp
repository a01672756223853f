#include "model/rope.h"

#include <cmath>

namespace echokv {

torch::Tensor rope_inverse_frequencies(const ModelConfig& c) {
  const int64_t d = c.head_dim;
  // HF: 1 / base ** (arange(0, dim, 2).float() / dim), in float32.
  auto exponents = torch::arange(0, d, 2, torch::kInt64).to(torch::kFloat32) / static_cast<float>(d);
  auto inv_freq = 1.0 / torch::pow(torch::tensor(static_cast<float>(c.rope_theta)), exponents);
  const RopeScaling& rs = c.rope_scaling;
  if (rs.kind == RopeScaling::Kind::kLinear) {
    inv_freq = inv_freq / static_cast<float>(rs.factor);
  } else if (rs.kind == RopeScaling::Kind::kLlama3) {
    const double old_len = static_cast<double>(rs.original_max_position_embeddings);
    const double low_freq_wavelen = old_len / rs.low_freq_factor;
    const double high_freq_wavelen = old_len / rs.high_freq_factor;
    auto wavelen = 2 * M_PI / inv_freq;
    auto scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / rs.factor, inv_freq);
    auto smooth = (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
    auto smoothed = (1 - smooth) * scaled / rs.factor + smooth * scaled;
    auto is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen);
    inv_freq = torch::where(is_medium, smoothed, scaled);
  }
  return inv_freq.to(torch::kFloat32);
}

Rope::Rope(const ModelConfig& config, torch::Device device)
    : inv_freq_(rope_inverse_frequencies(config).to(device)) {}

std::pair<torch::Tensor, torch::Tensor> Rope::cos_sin(const torch::Tensor& positions) const {
  auto freqs = positions.to(inv_freq_.device()).to(torch::kFloat32).unsqueeze(1) * inv_freq_.unsqueeze(0);
  auto emb = torch::cat({freqs, freqs}, -1);  // [T, D]
  return {emb.cos(), emb.sin()};
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

torch::Tensor Rope::apply(const torch::Tensor& x, const torch::Tensor& positions) const {
  auto [cos, sin] = cos_sin(positions);
  cos = cos.to(x.scalar_type());
  sin = sin.to(x.scalar_type());
  return x * cos + rotate_half(x) * sin;
}

}  // namespace echokv
