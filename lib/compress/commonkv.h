// CommonKV (Qiao et al. 2025, "CommonKV: Compressing KV Cache with Cross-layer Parameter
// Sharing", arXiv 2508.16134; the authors' code, rommel2021/CommonKV):
//   sharing   layers are grouped G at a time (the official layer_step: 4); per group the K
//             projections of its layers are stacked, W = [W_k^l; W_k^{l+1}; ...]
//             [G Hkv D, H], and factored by SVD, W = U S V^T: one down projection
//             A = V_r S_r^1/2 [H, r] shared by the group and one up projection per layer,
//             B^l = U_r^l S_r^1/2 [Hkv D, r] (U_r^l: layer l's rows of U_r); the same for V.
//             A token's cache entry in layer l is the latent z = x_l A (x_l the layer's
//             normalised input), its keys before RoPE z B^l^T. Because the residual stream
//             changes slowly, the latents of a group's layers are alike ("more easily
//             mergeable").
//   merging   once the prompt is prefilled, per group and token, the cosine similarity of the
//             keys' latents of the group's first and last layer; the `unmerged` fraction of
//             the least similar tokens over all groups together stays per layer (the adaptive
//             budget: groups whose layers disagree keep more), as do the first 4 and the last
//             128 tokens; every other token's latents are replaced by their mean over the
//             group's layers and stored once for the group. (The official code ranks all
//             tokens, sink and recent included, and averages with per-layer weights fitted to
//             Llama-3-8B; here the fraction is of the mergeable tokens, so the stored size is
//             known before the merge, and the mean is unweighted.)
// Layers beyond the last whole group share a basis but are never merged (as in the official
// code). The question and generated tokens are stored per layer. Keys are rebuilt and rotated
// (RoPE at the original positions) chunk by chunk at attention time; bytes() counts latents.
// The latent needs the layer's input, which the cache receives through
// KVCache::set_layer_input (keys and values from append are not stored).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "cache/kv_cache.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/rope.h"

namespace echokv {

struct CommonKVBases {
  int64_t layers_per_group = 4, max_rank = 0;
  // per group: shared down projections [H, r_max]; per layer: up projections [Hkv D, r_max]
  // (columns in decreasing singular value order, so the first r columns are the rank-r SVD).
  std::vector<torch::Tensor> down_k, down_v, up_k, up_v;
  std::vector<int64_t> group_of;  // per layer
  int64_t merged_groups = 0;      // groups 0 .. merged_groups - 1 hold layers_per_group layers

  static std::shared_ptr<CommonKVBases> from_model(const LlamaModel& model, int64_t layers_per_group);
};

struct CommonKVLayout {
  int64_t rank = 0;              // latent width used (<= max_rank)
  int64_t merge_tokens = 0;      // prompt tokens [0, merge_tokens) are merged once prefilled
  double unmerged = 0.4;         // fraction of the mergeable tokens kept per layer
  int64_t sink = 4, recent = 128;
  int64_t chunk_tokens = 2048;
};

// Latent tokens stored per layer and per group after merging a range of n tokens: what the
// byte count follows from (the merge picks which tokens; the counts depend only on n).
struct CommonKVCounts {
  int64_t protected_tokens = 0;  // sink + recent within the range
  int64_t unmerged = 0;          // mergeable tokens kept per layer, over all merged groups
  int64_t merged = 0;            // tokens stored once per group, over all merged groups
};
CommonKVCounts commonkv_counts(int64_t n, int64_t merged_groups, const CommonKVLayout& layout);

class CommonKVCache : public KVCache {
 public:
  CommonKVCache(const ModelConfig& config, std::shared_ptr<const Rope> rope, std::shared_ptr<const CommonKVBases> bases,
                const CommonKVLayout& layout, torch::Device device, torch::ScalarType dtype);

  bool wants_layer_input() const override { return true; }
  void set_layer_input(int layer, const torch::Tensor& x) override;  // x [B, T, H]
  int64_t next_position() const override { return committed_; }
  void append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v, const torch::Tensor& positions) override;
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override;
  void advance(int64_t tokens) override;
  int64_t bytes() const override;
  int64_t full_bytes() const override;
  void reset() override;

  // Merges the first layout.merge_tokens tokens (all must be committed); once.
  void merge_prompt();
  // Layer l's keys (before RoPE) and values as attention sees them, for tokens [0, n) in
  // position order: [B, Hkv, n, D] (tests and diagnostics).
  std::pair<torch::Tensor, torch::Tensor> rebuilt(int layer) const;

 private:
  struct Latents {                        // a growable list of tokens: latents [B, cap, r]
    torch::Tensor k, v;
    std::vector<int64_t> positions;       // host, ascending
    torch::Tensor positions_device;       // [cap] int64
    int64_t len = 0;
  };
  void push(Latents& list, const torch::Tensor& zk, const torch::Tensor& zv, const std::vector<int64_t>& positions);
  void visit_list(int layer, const Latents& list, const std::function<void(const KVBlock&)>& visit) const;
  torch::Tensor up(const torch::Tensor& z, const torch::Tensor& up_proj) const;  // [B, n, r] -> [B, Hkv, n, D]

  ModelConfig config_;
  std::shared_ptr<const Rope> rope_;
  std::shared_ptr<const CommonKVBases> bases_;
  CommonKVLayout layout_;
  torch::Device device_;
  torch::ScalarType dtype_;
  std::vector<Latents> own_;              // per layer
  std::vector<Latents> shared_;           // per group
  std::vector<torch::Tensor> pending_x_;  // per layer: this forward's input
  bool merged_ = false;
  int64_t committed_ = 0, batch_ = 0;
};

}  // namespace echokv
