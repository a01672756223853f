// MiniCache (Liu et al. 2024, "MiniCache: KV Cache Compression in Depth Dimension for Large
// Language Models", NeurIPS 2024): adjacent layers' KV states merged across depth.
//   pairs     layers (S, S+1), (S+2, S+3), ... from the start layer S (the paper: the middle
//             of the network) to the last layer; an odd layer left over stays whole.
//   merge     per token and KV head, each state of the pair's two layers is split into its
//             magnitude ||x|| and direction x / ||x||; the directions are merged by SLERP,
//             e = sin((1 - t) W) / sin W . u_a + sin(t W) / sin W . u_b, W = arccos(u_a . u_b)
//             (u_a the shallower layer's, t the interpolation, the paper's 0.6), linear when
//             W ~ 0; one direction is stored per token for both layers, with both magnitudes,
//             and layer i's state is restored as ||x_i|| e.
//   retention the tokens whose states differ most across the pair are kept unmerged, both
//             layers' states whole. The paper thresholds the angular distance W / pi at
//             d_min + (d_max - d_min) gamma; here the R most distant tokens of every KV head
//             are kept (distance: W of the keys + W of the values), so that every head holds
//             the same count (rectangular storage) and a byte budget sets R exactly.
// The merge acts on the prompt once it is prefilled (every token up to the question);
// the question and generated tokens are stored whole in every layer (the paper merges the
// prefill cache). Keys are merged with RoPE applied: both layers rotate a token by the same
// angle, which keeps norms and angles, so this equals merging before RoPE.
// bytes() counts directions, magnitudes (the cache's dtype) and whole states; positions are
// bookkeeping, as in every compacted cache here.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "cache/full_cache.h"
#include "model/config.h"

namespace echokv {

// SLERP merge of two layers' states. a, b: [..., n, D] (a the shallower layer). Returns the
// merged directions [..., n, D] (unit length), the magnitudes ||a||, ||b|| [..., n] and the
// angle W [..., n] in [0, pi], all float32.
struct SlerpMerged {
  torch::Tensor direction, norm_a, norm_b, angle;
};
SlerpMerged slerp_merge(const torch::Tensor& a, const torch::Tensor& b, double t);

struct MiniCacheLayout {
  int64_t start_layer = 0;   // first layer of the first merged pair
  double interpolation = 0.6;
  int64_t merge_tokens = 0;  // prompt tokens [0, merge_tokens) are merged
  int64_t retained = 0;      // of them, tokens kept unmerged per (pair, KV head)
};

class MiniCacheCache : public KVCache {
 public:
  // full: prefilled with at least layout.merge_tokens tokens (keys with RoPE); every token of
  // it is taken over (tokens at or after merge_tokens whole).
  MiniCacheCache(const ModelConfig& config, const FullCache& full, std::shared_ptr<const Rope> rope,
                 const MiniCacheLayout& layout, int64_t chunk_tokens = 2048);

  int64_t next_position() const override { return committed_; }
  void append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v, const torch::Tensor& positions) override;
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override;
  void advance(int64_t tokens) override;
  int64_t bytes() const override;
  int64_t full_bytes() const override;
  void reset() override;

  int64_t merged_pairs() const { return static_cast<int64_t>(pairs_.size()); }
  // The layer's states restored for the merged range: keys with RoPE [B, Hkv, merge_tokens, D]
  // and values (tests and diagnostics; attention never builds this).
  std::pair<torch::Tensor, torch::Tensor> restored(int layer) const;

 private:
  struct Pair {
    torch::Tensor dir_k, dir_v;          // [B, Hkv, M, D] merged tokens' directions
    torch::Tensor mag_k, mag_v;          // [2, B, Hkv, M] magnitudes per layer of the pair
    torch::Tensor merged_pos;            // [Hkv, M] int64, ascending
    torch::Tensor kept_k, kept_v;        // [2, B, Hkv, R, D] retained tokens, both layers
    torch::Tensor kept_pos;              // [Hkv, R] int64, ascending
  };
  struct Tail {                          // whole tokens of a layer: [B, Hkv, cap, D], keys with RoPE
    torch::Tensor k, v;
    int64_t begin = 0, len = 0;          // positions begin .. begin + len - 1
  };
  struct HostPositions {                 // per KV head, ascending (block min / max without a device sync)
    std::vector<std::vector<int64_t>> merged, kept;
  };
  void visit_pair_part(const Pair& pair, int index, int64_t head, const std::function<void(const KVBlock&)>& visit) const;

  std::shared_ptr<const Rope> rope_;
  MiniCacheLayout layout_;
  int64_t chunk_, layers_, batch_, kv_heads_, head_dim_, element_size_;
  std::vector<int64_t> pair_of_;         // per layer: its pair's index, -1 if whole
  std::vector<Pair> pairs_;
  std::vector<HostPositions> host_positions_;  // per pair
  std::vector<Tail> tails_;              // per layer
  int64_t committed_ = 0;
};

}  // namespace echokv
