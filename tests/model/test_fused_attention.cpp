// The fused attention path (LibTorch >= 2.1, through core/torch_compat.h) against plain
// float64 loops, for inference (one block, mask) and training (causal, GQA, sliding window,
// gradients). On a LibTorch that has the kernel these tests fail if the path is not taken.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include <torch/version.h>

#include "core/torch_compat.h"
#include "model/attention.h"
#include "model/model_test_util.h"
#include "model/train_forward.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

// out[b, h, i] = sum_j softmax_j(scale * q_i . k_j over allowed j) v_j, KV head h / G, float64 loops.
torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale,
                                  int64_t q_offset, std::optional<int64_t> window) {
  auto qd = q.to(torch::kFloat64).cpu(), kd = k.to(torch::kFloat64).cpu(), vd = v.to(torch::kFloat64).cpu();
  const int64_t B = q.size(0), Hq = q.size(1), Tq = q.size(2), D = q.size(3), Hkv = k.size(1), n = k.size(2);
  auto out = torch::zeros({B, Hq, Tq, D}, torch::kFloat64);
  auto qa = qd.accessor<double, 4>(), ka = kd.accessor<double, 4>(), va = vd.accessor<double, 4>();
  auto oa = out.accessor<double, 4>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t kh = h / (Hq / Hkv);
      for (int64_t i = 0; i < Tq; ++i) {
        const int64_t pos = q_offset + i;
        std::vector<double> s(n, -std::numeric_limits<double>::infinity());
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < n; ++j) {
          if (j > pos || (window && pos - j >= *window)) continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += qa[b][h][i][d] * ka[b][kh][j][d];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (int64_t j = 0; j < n; ++j) z += std::isinf(s[j]) ? 0.0 : std::exp(s[j] - mx);
        for (int64_t j = 0; j < n; ++j) {
          if (std::isinf(s[j])) continue;
          const double p = std::exp(s[j] - mx) / z;
          for (int64_t d = 0; d < D; ++d) oa[b][h][i][d] += p * va[b][kh][j][d];
        }
      }
    }
  return out;
}

torch::Tensor randn(std::vector<int64_t> shape, uint64_t seed, const torch::Device& device) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32)).to(device);
}

}  // namespace

TEST(FusedAttention, AvailableExactlyFromLibTorch21) {
  const bool expected = TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1);
  EXPECT_EQ(compat::kHasFusedAttention, expected) << "LibTorch " << compat::torch_version();
}

TEST(FusedAttention, SingleBlockDecodeTakesTheFusedPathAndEqualsPlainLoops) {
  for (const auto& device : test_devices()) {
    // 2 KV heads x 3 queries each, 5 new queries at positions 11..15 over 16 keys.
    auto q = randn({1, 6, 5, 8}, 1, device), k = randn({1, 2, 16, 8}, 2, device), v = randn({1, 2, 16, 8}, 3, device);
    const double scale = 0.3;  // not 1/sqrt(D): the explicit scale must reach the kernel
    QueryPositions qpos{torch::arange(11, 16, torch::TensorOptions().dtype(torch::kInt64).device(device)), 11, 15};
    const auto run = [&](bool fused) {
      AttentionOptions opt;
      opt.scale = scale;
      opt.fused = fused;
      return attend_blocks(q, qpos, [&](const std::function<void(const KVBlock&)>& visit) {
        KVBlock b;
        b.k = k;
        b.v = v;
        b.positions = torch::arange(16, torch::TensorOptions().dtype(torch::kInt64).device(device));
        b.min_position = 0;
        b.max_position = 15;
        b.is_only = true;
        visit(b);
      }, opt);
    };
    const auto want = reference_attention(q, k, v, scale, 11, std::nullopt);
    const int64_t before = fused_attention_calls();
    const auto fused = run(true);
    EXPECT_EQ(fused_attention_calls() - before, compat::kHasFusedAttention ? 1 : 0) << device;
    const auto plain = run(false);
    EXPECT_EQ(fused_attention_calls() - before, compat::kHasFusedAttention ? 1 : 0) << "fused = false must not fuse";
    EXPECT_LE(max_abs_diff(fused.cpu(), want), 1e-5) << device;
    EXPECT_LE(max_abs_diff(plain.cpu(), want), 1e-5) << device;
  }
}

TEST(FusedAttention, TrainingCausalAttentionEqualsPlainLoopsWithGradients) {
  for (const auto& device : test_devices()) {
    for (const std::optional<int64_t> window : {std::optional<int64_t>{}, std::optional<int64_t>{5}}) {
      auto q = randn({2, 4, 12, 8}, 4, device).requires_grad_(true);
      auto k = randn({2, 2, 12, 8}, 5, device).requires_grad_(true);
      auto v = randn({2, 2, 12, 8}, 6, device).requires_grad_(true);
      auto out = causal_attention(q, k, v, 0.35, window);
      EXPECT_LE(max_abs_diff(out.detach().cpu(), reference_attention(q, k, v, 0.35, 0, window)), 1e-5) << device;
      // Gradients against autograd through the float64 plain formula.
      auto qd = q.detach().to(torch::kFloat64).requires_grad_(true);
      auto kd = k.detach().to(torch::kFloat64).requires_grad_(true);
      auto vd = v.detach().to(torch::kFloat64).requires_grad_(true);
      auto pos = torch::arange(12, torch::TensorOptions().dtype(torch::kInt64).device(device));
      auto allowed = pos.unsqueeze(0) <= pos.unsqueeze(1);
      if (window) allowed = allowed & ((pos.unsqueeze(1) - pos.unsqueeze(0)) < *window);
      auto scores = torch::matmul(qd, kd.repeat_interleave(2, 1).transpose(-1, -2)) * 0.35;
      scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<double>::infinity());
      auto ref = torch::matmul(torch::softmax(scores, -1), vd.repeat_interleave(2, 1));
      auto w = randn({2, 4, 12, 8}, 7, device);
      (out * w).sum().backward();
      (ref * w.to(torch::kFloat64)).sum().backward();
      EXPECT_LE(max_abs_diff(q.grad().cpu(), qd.grad().cpu()), 1e-4) << device;
      EXPECT_LE(max_abs_diff(k.grad().cpu(), kd.grad().cpu()), 1e-4) << device;
      EXPECT_LE(max_abs_diff(v.grad().cpu(), vd.grad().cpu()), 1e-4) << device;
    }
  }
}

// The fused kernel serves float32 (and any CUDA tensor); CPU bfloat16 stays on the plain path,
// where LibTorch 2.6's CPU kernel is ~5x slower (benchmarks/README.md).
TEST(FusedAttention, CpuBfloat16KeepsThePlainPath) {
  const auto f32 = torch::zeros({1, 2, 3, 8});
  EXPECT_EQ(compat::fused_attention_pays(f32), compat::kHasFusedAttention);
  EXPECT_FALSE(compat::fused_attention_pays(f32.to(torch::kBFloat16)));
  EXPECT_FALSE(compat::fused_attention_pays(f32.to(torch::kFloat16)));
  torch::manual_seed(5);
  const auto q = torch::randn({1, 4, 3, 8}).to(torch::kBFloat16), k = torch::randn({1, 2, 6, 8}).to(torch::kBFloat16);
  const auto v = torch::randn({1, 2, 6, 8}).to(torch::kBFloat16);
  QueryPositions qpos{torch::arange(3, 6, torch::kInt64), 3, 5};
  const int64_t before = fused_attention_calls();
  AttentionOptions opt;
  opt.scale = 1.0 / std::sqrt(8.0);
  const auto out = attend_blocks(q, qpos, [&](const std::function<void(const KVBlock&)>& visit) {
    KVBlock b;
    b.k = k;
    b.v = v;
    b.positions = torch::arange(6, torch::kInt64);
    b.min_position = 0;
    b.max_position = 5;
    b.is_only = true;
    visit(b);
  }, opt);
  EXPECT_EQ(fused_attention_calls(), before);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
}
