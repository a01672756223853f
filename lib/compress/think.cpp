#include "compress/think.h"

#include <cmath>

#include "core/error.h"

namespace echokv {

double think_stored_ratio(double prune, int64_t head_dim) {
  const auto dropped = static_cast<int64_t>(std::floor(prune * static_cast<double>(head_dim)));
  return 1.0 - static_cast<double>(dropped) / (2.0 * static_cast<double>(head_dim));
}

double think_prune_for_ratio(double ratio, int64_t head_dim) {
  if (!(ratio >= 0.5 && ratio <= 1)) throw Error("ThinK prunes keys only: its stored ratio is between 0.5 and 1");
  const auto dropped = static_cast<int64_t>(std::floor(2.0 * (1.0 - ratio) * static_cast<double>(head_dim) + 1e-9));
  return static_cast<double>(dropped) / static_cast<double>(head_dim);
}

std::vector<torch::Tensor> think_channels(const FullCache& cache, const std::vector<torch::Tensor>& window_q,
                                          const ThinKOptions& o) {
  if (!(o.prune >= 0 && o.prune <= 1)) throw Error("ThinK: prune must be in [0, 1]");
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (size_t l = 0; l < window_q.size(); ++l) {
    auto k = cache.keys(static_cast<int>(l))[0].to(torch::kFloat32);  // [Hkv, n, D]
    auto q = window_q[l][0].to(torch::kFloat32);                        // [Hq, w, D]
    const int64_t hkv = k.size(0), d = k.size(2), g = q.size(0) / hkv;
    auto q_norm = q.reshape({hkv, g * q.size(1), d}).norm(2, {1});  // [Hkv, D]
    auto k_norm = k.norm(2, {1});                                   // [Hkv, D]
    auto score = (q_norm * k_norm).cpu();
    const int64_t kept = d - static_cast<int64_t>(std::floor(o.prune * static_cast<double>(d)));
    auto m = torch::zeros({hkv, d}, torch::kBool);
    if (kept > 0) m.scatter_(1, std::get<1>(score.topk(kept, 1)), true);
    out.push_back(m);
  }
  return out;
}

std::vector<torch::Tensor> think_pair_channels(const std::vector<torch::Tensor>& key_features,
                                               const std::vector<torch::Tensor>& window_q, double prune) {
  if (!(prune >= 0 && prune <= 1)) throw Error("ThinK: prune must be in [0, 1]");
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (size_t l = 0; l < window_q.size(); ++l) {
    auto q = window_q[l][0].to(torch::kFloat32);  // [Hq, w, D]
    const int64_t d = q.size(2), half = d / 2;
    auto kf = key_features[l][0].to(torch::kFloat32);  // [n, Hkv * D]
    const int64_t hkv = kf.size(1) / d, g = q.size(0) / hkv;
    auto k = kf.view({kf.size(0), hkv, d}).transpose(0, 1);  // [Hkv, n, D]
    auto pair_sq = [half](const torch::Tensor& x) {          // [H, rows, D] -> [H, D/2] squared pair norms
      auto sq = x.pow(2).sum(1);
      return sq.narrow(1, 0, half) + sq.narrow(1, half, half);
    };
    auto score = (pair_sq(q.reshape({hkv, g * q.size(1), d})).sqrt() * pair_sq(k).sqrt()).cpu();  // [Hkv, D/2]
    const int64_t kept = half - static_cast<int64_t>(std::floor(prune * static_cast<double>(half)));
    auto pairs = torch::zeros({hkv, half}, torch::kBool);
    if (kept > 0) pairs.scatter_(1, std::get<1>(score.topk(kept, 1)), true);
    out.push_back(torch::cat({pairs, pairs}, 1));
  }
  return out;
}

PrunedKeyCache::PrunedKeyCache(std::unique_ptr<KVCache> base, const KeyStore& keys, int64_t pruned_end,
                               std::vector<torch::Tensor> channels)
    : base_(std::move(base)), pruned_end_(pruned_end) {
  if (pruned_end < 0 || pruned_end > base_->next_position()) throw Error("ThinK: pruned range outside the cache");
  torch::NoGradGuard no_grad;
  for (size_t l = 0; l < channels.size(); ++l) {
    auto k = keys(*base_, static_cast<int>(l));  // [B, Hkv, T, D] view of the storage
    auto drop = channels[l].to(torch::kBool).logical_not().to(k.device());  // [Hkv, D]
    if (drop.dim() != 2 || drop.size(0) != k.size(1) || drop.size(1) != k.size(3))
      throw Error("ThinK: channel mask of layer " + std::to_string(l) + " must be [KV heads, head_dim]");
    if (pruned_end > 0)
      k.narrow(2, 0, pruned_end).masked_fill_(drop.view({1, drop.size(0), 1, drop.size(1)}), 0);
    dropped_per_token_ += drop.sum().item<int64_t>();
    channel_bytes_ = k.size(0) * static_cast<int64_t>(k.element_size());
  }
}

PrunedKeyCache::PrunedKeyCache(std::unique_ptr<FullCache> base, int64_t pruned_end, std::vector<torch::Tensor> channels)
    : PrunedKeyCache(std::move(base), [](KVCache& b, int layer) { return static_cast<FullCache&>(b).keys(layer); },
                     pruned_end, std::move(channels)) {}

int64_t PrunedKeyCache::bytes() const {
  const int64_t n = base_->next_position();
  if (n == 0) return 0;
  return base_->bytes() - std::min(pruned_end_, n) * dropped_per_token_ * channel_bytes_;
}

void PrunedKeyCache::reset() {
  base_->reset();
  pruned_end_ = 0;
  dropped_per_token_ = 0;
}

}  // namespace echokv
