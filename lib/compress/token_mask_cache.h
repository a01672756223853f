// Token eviction as a mask over any KVCache (kvpress-style retain): keep is per layer bool
// [Hm, n] over the tokens at positions begin .. begin + n, with Hm = 1 (the same tokens for
// every KV head) or Hm = Hkv (per head). Whatever blocks the base cache hands attention (full
// width, per head, in chunks), an evicted token gets a -inf bias added to the block's own. The
// evicted tokens stay in memory; bytes() = the base's bytes minus what `freed_bytes` says a
// compacted store of the kept tokens would not hold (the owner of the combination knows its
// storage: KVzip's masked full cache, EchoKV x KVzip).
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "cache/kv_cache.h"

namespace echokv {

class TokenMaskCache : public KVCache {
 public:
  // Bytes the eviction frees, given the base cache in its current state.
  using FreedBytes = std::function<int64_t(const KVCache& base, int64_t begin, const std::vector<torch::Tensor>& keep)>;
  TokenMaskCache(std::unique_ptr<KVCache> base, FreedBytes freed_bytes);

  // keep: per layer bool [Hm, n] (or [n]) for the tokens at positions begin .. begin + n,
  // all already in the cache.
  void set_keep(int64_t begin, std::vector<torch::Tensor> keep);
  void clear_keep() { keep_.clear(); }
  bool has_keep() const { return !keep_.empty(); }
  KVCache& inner() { return *base_; }

  int64_t next_position() const override { return base_->next_position(); }
  void append(int layer, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& positions) override {
    base_->append(layer, k, v, positions);
  }
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override;
  void advance(int64_t tokens) override { base_->advance(tokens); }
  int64_t bytes() const override;
  int64_t full_bytes() const override { return base_->full_bytes(); }
  void reset() override {
    base_->reset();
    keep_.clear();
  }

 private:
  std::unique_ptr<KVCache> base_;
  FreedBytes freed_bytes_;
  int64_t begin_ = 0;
  std::vector<torch::Tensor> keep_;  // per layer bool [Hm, n], on the device attention runs on
};

}  // namespace echokv
