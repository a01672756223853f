// Physically compacted per-head KV cache (KVzip's storage, SnapKV's too): each (layer, KV
// head) keeps its own variable-length list of tokens, keys with RoPE at their original
// positions. Built once from a prefilled FullCache and a keep-mask over a token range; every
// token outside that range (the prefix before it, the question and generated tokens after
// it) is kept in every head. Each head owns buffers with headroom that grow by doubling
// (cache/growable.h): a decode step writes one token per head, and a head's buffers are copied
// only when its capacity doubles (amortised O(1) per token). Attention visits one
// block per KV head (KVBlock::head). truncate() rewinds to the compressed context, so one
// scoring pass serves several questions.
#pragma once
#include <memory>
#include <vector>

#include "cache/full_cache.h"

namespace echokv {

class CompactedCache : public KVCache {
 public:
  // full: prefilled; keep: per layer bool [Hkv, n] for tokens range_begin .. range_begin + n - 1
  // (all n <= full.next_position() - range_begin). headroom: free slots per head for later tokens.
  CompactedCache(const FullCache& full, std::shared_ptr<const Rope> rope, int64_t range_begin,
                 const std::vector<torch::Tensor>& keep, int64_t headroom = 256);

  int64_t next_position() const override { return committed_; }
  void append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v,
              const torch::Tensor& positions) override;
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override;
  void advance(int64_t tokens) override { committed_ += tokens; }
  int64_t bytes() const override;
  int64_t full_bytes() const override;
  void reset() override;

  // Drops every token at position >= length (a question and its answer), keeping the
  // compressed context for the next question on the same context.
  void truncate(int64_t length);
  // KeyRerotation (kvpress's KeyRerotationPress; HF's SinkCache and FINCH do the same): every
  // head's kept tokens renumbered 0 .. L-1 and their keys re-rotated by (new - old position),
  // so the cache reads as a contiguous L-token prompt and the next token takes position L.
  // Needs every (layer, head) to hold the same L tokens; full_bytes() still counts the
  // positions the prompt had.
  void renumber_contiguous();
  // Keeps, per (layer, KV head), the held tokens a mask selects (per layer bool [Hkv, L], L the
  // heads' common length; kvpress's DecodingPress re-compressing during generation).
  void retain(const std::vector<torch::Tensor>& keep);
  // What (layer, KV head) holds: keys with RoPE [B, len, D], values [B, len, D], positions [len].
  torch::Tensor head_keys(int layer, int64_t head) const { return heads_[layer][head].k.narrow(1, 0, heads_[layer][head].len); }
  torch::Tensor head_values(int layer, int64_t head) const { return heads_[layer][head].v.narrow(1, 0, heads_[layer][head].len); }
  torch::Tensor head_positions(int layer, int64_t head) const {
    return heads_[layer][head].positions.narrow(0, 0, heads_[layer][head].len);
  }
  // Tokens held by (layer, KV head).
  int64_t head_length(int layer, int64_t head) const { return heads_[layer][head].len; }

 private:
  struct Head {
    torch::Tensor k, v;        // [B, cap, D]
    torch::Tensor positions;   // [cap] int64
    int64_t len = 0;
    int64_t min_position = 0, max_position = -1;
  };
  void reserve(Head& h, int64_t needed);

  std::shared_ptr<const Rope> rope_;
  int64_t batch_ = 1, kv_heads_ = 0, head_dim_ = 0, element_size_ = 0;
  std::vector<std::vector<Head>> heads_;  // [layer][kv head]
  int64_t committed_ = 0;
  int64_t renumbered_away_ = 0;  // positions renumber_contiguous() removed (full_bytes counts them)
};

}  // namespace echokv
