// KIVI on the tokens an eviction method kept (KIVI x token eviction, e.g. KVzip or SnapKV, as
// the EchoKV paper and KVzip's own paper combine them): each (layer, KV head) of a
// CompactedCache becomes its own KIVI token list (compress/kivi_cache.h): keys quantized per
// channel in blocks of `residual` kept tokens, values per token once older than the head's
// last `residual` kept tokens, original positions kept. Tokens added later (the question,
// generated tokens) are attended in full precision within their forward and then join every
// head's list under the same policy. bytes() counts codes, scales, minima and the
// full-precision tails; attention visits one block per quantized key block and head.
#pragma once
#include <memory>
#include <vector>

#include "compress/compacted_cache.h"
#include "compress/kivi_cache.h"

namespace echokv {

class KiviCompactedCache : public KVCache {
 public:
  KiviCompactedCache(const CompactedCache& kept, const ModelConfig& config, std::shared_ptr<const Rope> rope,
                     KiviOptions options);

  int64_t next_position() const override { return committed_; }
  void append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v, const torch::Tensor& positions) override;
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override;
  void advance(int64_t tokens) override;
  int64_t bytes() const override;
  int64_t full_bytes() const override;
  void reset() override;

  const KiviTokenList& head(int layer, int64_t head) const { return heads_[static_cast<size_t>(layer)][static_cast<size_t>(head)]; }

 private:
  std::shared_ptr<const Rope> rope_;
  KiviOptions o_;
  int64_t layers_, kv_heads_, head_dim_, batch_, element_size_;
  torch::Device device_;
  torch::ScalarType dtype_;
  std::vector<std::vector<KiviTokenList>> heads_;  // [layer][KV head]
  int64_t committed_ = 0, full_tokens_ = 0;        // positions so far; tokens a full cache would hold
};

}  // namespace echokv
