#include <cmath>

#include <gtest/gtest.h>

#include "model/rope.h"

using namespace echokv;

namespace {

ModelConfig rope_config(int64_t head_dim, double theta) {
  ModelConfig c;
  c.hidden_size = head_dim * 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.head_dim = head_dim;
  c.rope_theta = theta;
  return c;
}

// Meta's llama3 `apply_scaling`, written out per frequency in double precision.
double llama3_scaled(double freq, double factor, double low, double high, double old_len) {
  const double wavelen = 2 * M_PI / freq;
  if (wavelen < old_len / high) return freq;
  if (wavelen > old_len / low) return freq / factor;
  const double smooth = (old_len / wavelen - low) / (high - low);
  return (1 - smooth) * freq / factor + smooth * freq;
}

TEST(Rope, PlainFrequencies) {
  auto c = rope_config(8, 10000.0);
  auto f = rope_inverse_frequencies(c);
  ASSERT_EQ(f.size(0), 4);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f[i].item<double>(), std::pow(10000.0, -2.0 * i / 8), 1e-7);
}

TEST(Rope, Llama3ScalingMatchesMetaReference) {
  auto c = rope_config(128, 500000.0);
  c.rope_scaling.kind = RopeScaling::Kind::kLlama3;
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  auto f = rope_inverse_frequencies(c);
  int low = 0, mid = 0, high = 0;
  for (int i = 0; i < 64; ++i) {
    const double base = std::pow(500000.0, -2.0 * i / 128);
    const double want = llama3_scaled(base, 8.0, 1.0, 4.0, 8192.0);
    EXPECT_NEAR(f[i].item<double>(), want, 1e-6 * want + 1e-12) << "i=" << i;
    const double wl = 2 * M_PI / base;
    (wl < 2048 ? high : wl > 8192 ? low : mid) += 1;
  }
  // The three regimes are all exercised by this configuration.
  EXPECT_GT(low, 0);
  EXPECT_GT(mid, 0);
  EXPECT_GT(high, 0);
  EXPECT_NEAR(f[0].item<double>(), 1.0, 1e-7);  // highest frequency unchanged
}

TEST(Rope, LinearScalingDividesFrequencies) {
  auto c = rope_config(16, 10000.0);
  auto plain = rope_inverse_frequencies(c);
  c.rope_scaling.kind = RopeScaling::Kind::kLinear;
  c.rope_scaling.factor = 4.0;
  EXPECT_TRUE(torch::allclose(rope_inverse_frequencies(c), plain / 4.0));
}

TEST(Rope, RotateHalfByHand) {
  // x = [1, 2, 3, 4] at position p with D=4: pairs (x0, x2) and (x1, x3) rotate by p*f0, p*f1.
  auto c = rope_config(4, 100.0);
  Rope rope(c, torch::kCPU);
  auto x = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({1, 1, 1, 4});
  const int64_t p = 3;
  auto y = rope.apply(x, torch::tensor({p}));
  const double f0 = 1.0, f1 = 1.0 / 10.0;  // 100^(-0/4), 100^(-2/4)
  const double a0 = p * f0, a1 = p * f1;
  const double want[4] = {1 * std::cos(a0) - 3 * std::sin(a0), 2 * std::cos(a1) - 4 * std::sin(a1),
                          3 * std::cos(a0) + 1 * std::sin(a0), 4 * std::cos(a1) + 2 * std::sin(a1)};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y.view({-1})[i].item<double>(), want[i], 1e-5);
}

TEST(Rope, DotProductDependsOnlyOnRelativePosition) {
  auto c = rope_config(16, 10000.0);
  Rope rope(c, torch::kCPU);
  auto q = torch::randn({1, 1, 1, 16});
  auto k = torch::randn({1, 1, 1, 16});
  auto dot = [&](int64_t pq, int64_t pk) {
    return (rope.apply(q, torch::tensor({pq})) * rope.apply(k, torch::tensor({pk}))).sum().item<double>();
  };
  EXPECT_NEAR(dot(10, 7), dot(103, 100), 1e-4);
}

}  // namespace
