#include "compress/duo_attention.h"

#include <algorithm>
#include <numeric>

#include "cache/cache_factory.h"
#include "core/error.h"
#include "model/rope.h"

namespace echokv {
namespace {

// Sums of the pre-RoPE queries and keys of every token, per layer (float64 CPU).
struct MeanQK : LayerObserver {
  std::vector<torch::Tensor> q, k;
  int64_t tokens = 0;
  explicit MeanQK(int layers) : q(size_t(layers)), k(size_t(layers)) {}
  void on_qkv(int layer, const torch::Tensor& q_pre, const torch::Tensor& k_pre, const torch::Tensor&,
              const torch::Tensor&) override {
    auto qs = q_pre[0].to(torch::kCPU, torch::kFloat64).sum(1), ks = k_pre[0].to(torch::kCPU, torch::kFloat64).sum(1);
    q[layer] = q[layer].defined() ? q[layer] + qs : qs;
    k[layer] = k[layer].defined() ? k[layer] + ks : ks;
  }
};

}  // namespace

torch::Tensor duo_attention_area(const Rope& rope, const torch::Tensor& mean_q, const torch::Tensor& mean_k,
                                 int64_t pattern_length, double scale) {
  const int64_t hq = mean_q.size(0), hkv = mean_k.size(0), d = mean_q.size(1), g = hq / hkv, L = pattern_length;
  auto positions = torch::arange(L, torch::kInt64);
  auto q = rope.apply(mean_q.to(torch::kFloat32).view({1, hq, 1, d}).expand({1, hq, L, d}).contiguous(), positions);
  auto k = rope.apply(mean_k.to(torch::kFloat32).view({1, hkv, 1, d}).expand({1, hkv, L, d}).contiguous(), positions);
  auto last = q[0].select(1, L - 1).to(torch::kCPU, torch::kFloat32);                 // [Hq, D]
  auto keys = k[0].repeat_interleave(g, 0).to(torch::kCPU, torch::kFloat32);          // [Hq, L, D]
  auto attn = torch::softmax(torch::matmul(keys, last.unsqueeze(-1)).squeeze(-1).mul_(scale), -1);  // [Hq, L]
  return attn.cumsum(-1).mean(-1).view({hkv, g}).mean(-1);
}

torch::Tensor duo_attention_head_scores(LlamaModel& model, const std::vector<std::vector<int64_t>>& samples,
                                        int64_t pattern_length, int64_t chunk) {
  if (samples.empty()) throw Error("DuoAttention: no calibration samples");
  if (pattern_length < 1) throw Error("DuoAttention: pattern length must be >= 1");
  torch::NoGradGuard no_grad;
  const auto& cfg = model.config();
  auto scores = torch::zeros({cfg.num_hidden_layers, cfg.num_key_value_heads}, torch::kFloat32);
  for (const auto& ids : samples) {
    if (ids.empty()) throw Error("DuoAttention: an empty calibration sample");
    const int64_t n = static_cast<int64_t>(ids.size());
    auto cache = make_full_cache(model, n);
    MeanQK sums(cfg.num_hidden_layers);
    ForwardOptions fo;
    fo.last_only = true;
    fo.observer = &sums;
    for (int64_t s = 0; s < n; s += chunk) {
      const int64_t len = std::min(chunk, n - s);
      model.forward(torch::tensor(std::vector<int64_t>(ids.begin() + s, ids.begin() + s + len), torch::kInt64).view({1, len}),
                    *cache, fo);
    }
    for (int l = 0; l < cfg.num_hidden_layers; ++l)
      scores[l] += duo_attention_area(*model.rope(), sums.q[l] / double(n), sums.k[l] / double(n), pattern_length,
                                      model.attention_options().scale) /
                   double(samples.size());
  }
  return scores;
}

torch::Tensor duo_streaming_heads(const torch::Tensor& scores, int64_t count) {
  auto flat = scores.reshape({-1}).to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t total = flat.numel();
  std::vector<int64_t> order(static_cast<size_t>(total));
  std::iota(order.begin(), order.end(), 0);
  const float* s = flat.data_ptr<float>();
  std::stable_sort(order.begin(), order.end(), [s](int64_t a, int64_t b) { return s[a] < s[b]; });
  auto mask = torch::zeros({total}, torch::kBool);
  for (int64_t i = 0; i < std::min(std::max<int64_t>(0, count), total); ++i) mask[order[static_cast<size_t>(i)]] = true;
  return mask.view(scores.sizes());
}

}  // namespace echokv
