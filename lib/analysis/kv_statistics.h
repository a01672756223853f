// Streaming second-order statistics of the KV cache, enough to compute every linear
// predictability metric exactly without keeping tokens: for each kind (K, V) and layer l,
// the feature sum and the cross-products with layers l, l-1, ..., l-window, in float64.
// Features are a layer's flattened per-token vector [Hkv*D] (keys before RoPE).
// Numerics: rows are shifted by a per-(kind, layer) reference (the first batch's mean)
// before accumulation, so covariances do not suffer cancellation from large means.
// Memory: 2 * L * (window+1) * F^2 * 8 bytes (Llama-3-8B, window 3: 2.1 GB).
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "echo/head_plan.h"

namespace echokv {

class KVStatistics {
 public:
  KVStatistics() = default;
  KVStatistics(int64_t num_layers, int64_t features, int window, torch::Device device = torch::kCPU);

  // Adds one batch of rows for (kind, layer): x [N, F], any dtype/device. For each kind, the
  // layers of one batch arrive in order 0..L-1 with the same N (the same tokens).
  void add(KVKind kind, int layer, const torch::Tensor& x);

  int64_t num_layers() const { return num_layers_; }
  int64_t features() const { return features_; }
  int window() const { return window_; }
  int64_t count() const { return count_; }

  torch::Tensor mean(KVKind kind, int layer) const;  // [F] float64
  // Cov(x_a, x_b) = E[(x_a - mu_a)(x_b - mu_b)^T], [F, F] float64; needs |a - b| <= window.
  torch::Tensor covariance(KVKind kind, int a, int b) const;
  bool covers(int a, int b) const { return std::abs(a - b) <= window_; }

  // Atomic save / strict load (safetensors with metadata).
  void save(const std::string& path) const;
  static KVStatistics load(const std::string& path);

 private:
  struct Side {
    std::vector<torch::Tensor> shift;               // [L] of [F]
    std::vector<torch::Tensor> sum;                 // [L] of [F]: sum of shifted rows
    std::vector<std::vector<torch::Tensor>> cross;  // [L][lag] of [F, F]: sum x_l x_{l-lag}^T (shifted)
    std::deque<torch::Tensor> recent;               // the current batch's shifted rows of the last layers
    int next_layer = 0;
    int64_t batch_rows = 0;
  };
  Side& side(KVKind kind) { return sides_[int(kind)]; }
  const Side& side(KVKind kind) const { return sides_[int(kind)]; }

  int64_t num_layers_ = 0, features_ = 0;
  int window_ = 0;
  torch::Device device_{torch::kCPU};
  int64_t count_ = 0;
  Side sides_[2];
};

}  // namespace echokv
