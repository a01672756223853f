// Decode-time compression (kvpress's DecodingPress): the cache grows as usual through the
// prompt; during generation, every `interval` decoding steps (forwards of one token), each
// layer whose heads hold more than `target` tokens is re-scored with a scorer of stored
// states (compress/token_scores.h: knorm, keydiff, lagkv, random) over everything it holds,
// prompt included, and each KV head keeps its top `target`. Kept keys keep their original
// positions; storage is per head (CompactedCache), so bytes() falls to what is kept.
// kvpress also buffers hidden states for query-based scorers; those need the queries, which a
// cache never sees, so only state scorers are offered here.
#pragma once
#include <memory>

#include "compress/compacted_cache.h"
#include "compress/token_scores.h"
#include "model/llama.h"

namespace echokv {

struct DecodingCompressionOptions {
  const TokenScorer* scorer = nullptr;  // must have from_states
  int64_t interval = 512;               // kvpress's compression_interval
  int64_t target = 2048;                // target_size
  uint64_t seed = 0;                    // the random scorer
};

class DecodingCompressionCache : public KVCache {
 public:
  DecodingCompressionCache(const LlamaModel& model, DecodingCompressionOptions options);

  int64_t next_position() const override { return store_->next_position(); }
  void append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v, const torch::Tensor& positions) override {
    store_->append(layer, k_pre_rope, v, positions);
  }
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override {
    store_->for_each_block(layer, visit);
  }
  void advance(int64_t tokens) override;
  int64_t bytes() const override { return store_->bytes(); }
  int64_t full_bytes() const override { return store_->full_bytes(); }
  void reset() override;

  int64_t compressions() const { return compressions_; }
  const CompactedCache& store() const { return *store_; }

 private:
  void compress();
  DecodingCompressionOptions o_;
  int layers_;
  int64_t kv_heads_;
  std::unique_ptr<CompactedCache> store_;
  int64_t steps_ = 0, compressions_ = 0;
};

}  // namespace echokv
