// Fidelity of a compressed cache against the full cache on the same tokens: per-token
// KL(P_full || P_method), top-1 agreement, and both perplexities. Accumulated in float64.
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace echokv {

struct FidelityStats {
  int64_t tokens = 0;
  double nll_full = 0, nll_method = 0, kl = 0;  // sums over tokens
  int64_t top1_agree = 0;

  // full_logits, method_logits: [T, V]; ids: [T] (the sequence; targets are ids[1:]).
  void add(const torch::Tensor& full_logits, const torch::Tensor& method_logits, const std::vector<int64_t>& ids);
  void merge(const FidelityStats& other);
  nlohmann::json to_json() const;  // sums and the derived means
  static FidelityStats from_json(const nlohmann::json& j);
  double kl_mean() const { return tokens ? kl / tokens : 0; }
  double top1() const { return tokens ? static_cast<double>(top1_agree) / tokens : 0; }
  double ppl_full() const;
  double ppl_method() const;
};

}  // namespace echokv
