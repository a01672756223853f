// ThinK (Xu et al. 2024): query-driven pruning of key channels. For every (layer, KV head)
// the importance of key channel c is ||Q_win[:, c]|| * ||K[:, c]|| (the Frobenius norm of the
// channel's rank-one contribution to Q K^T), with Q_win the post-RoPE queries of the prompt's
// last `window` tokens (all query heads of the GQA group) and K the post-RoPE prompt keys.
// The top D - floor(prune * D) channels are kept for the prompt tokens before the window;
// the window, the values and every later token stay whole. Stored bytes count exactly that:
// ThinK's "0.5" key pruning stores 0.75 of the KV bytes.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "cache/full_cache.h"

namespace echokv {

struct ThinKOptions {
  double prune = 0.5;   // fraction of key channels dropped
  int64_t window = 32;  // observation window
};

// Stored / full bytes of ThinK with key pruning `prune` on tokens that are all pruned.
double think_stored_ratio(double prune, int64_t head_dim);
// The key pruning whose stored / full bytes is `ratio` (0.5 .. 1), rounded down to whole channels.
double think_prune_for_ratio(double ratio, int64_t head_dim);

// cache: prompt prefilled; window_q: per layer [B, Hq, w, D]. Returns per layer bool [Hkv, D].
std::vector<torch::Tensor> think_channels(const FullCache& cache, const std::vector<torch::Tensor>& window_q,
                                          const ThinKOptions& options);

// ThinK on RoPE pairs, for caches that store keys before RoPE (EchoKV-Hybrid): channels i and
// i + D/2 rotate together, so a pair's norms are the same before and after RoPE. Pairs are
// ranked by ||Q_pair||_F * ||K_pair||_F and the top D/2 - floor(prune * D / 2) kept (both
// channels). key_features: per layer [B, n, Hkv * D] pre-RoPE keys. Returns per layer bool [Hkv, D].
std::vector<torch::Tensor> think_pair_channels(const std::vector<torch::Tensor>& key_features,
                                               const std::vector<torch::Tensor>& window_q, double prune);

// A cache whose stored keys of tokens [0, pruned_end) keep only the chosen channels (the others
// are zeroed in place: q . k over the kept channels, as a compacted store computes it).
// channels: per layer bool [Hkv, D]. bytes() = the base's bytes minus the dropped channels.
class PrunedKeyCache : public KVCache {
 public:
  // A writable view [B, Hkv, T, D] of the base's stored keys of a layer (after RoPE for a full
  // cache; before RoPE for EchoKV's global key layers, where channels must keep RoPE pairs).
  using KeyStore = std::function<torch::Tensor(KVCache& base, int layer)>;
  PrunedKeyCache(std::unique_ptr<KVCache> base, const KeyStore& keys, int64_t pruned_end,
                 std::vector<torch::Tensor> channels);
  // A full cache's keys (ThinK).
  PrunedKeyCache(std::unique_ptr<FullCache> base, int64_t pruned_end, std::vector<torch::Tensor> channels);
  KVCache& inner() { return *base_; }

  int64_t next_position() const override { return base_->next_position(); }
  void append(int layer, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& positions) override {
    base_->append(layer, k, v, positions);
  }
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override {
    base_->for_each_block(layer, visit);
  }
  void advance(int64_t tokens) override { base_->advance(tokens); }
  int64_t bytes() const override;
  int64_t full_bytes() const override { return base_->full_bytes(); }
  void reset() override;

 private:
  std::unique_ptr<KVCache> base_;
  int64_t pruned_end_;
  int64_t dropped_per_token_ = 0;  // key channels dropped per pruned token, summed over layers and heads
  int64_t channel_bytes_ = 0;      // bytes of one key channel of one token, all batch rows
};

}  // namespace echokv
