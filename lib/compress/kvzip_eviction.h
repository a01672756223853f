// KVzip eviction from pair scores (../shared/docs/method-kvzip.md), and the "retain" storage:
// the full cache plus a keep-mask, so one prefill and one scoring pass serve a sweep of
// ratios in evaluation. Ratio = fraction of context pairs kept; the prefix (sink) and every
// token after the context are always kept; positions stay the original ones.
//   pair     : one global threshold over all layers and heads (heads keep different counts):
//              as the official _threshold, below ratio 1 the pairs scoring strictly above the
//              int(N * ratio)-th largest score are kept (k - 1 of them when scores are distinct)
//   uniform  : per (layer, KV head) top int(n * ratio)
// bytes() reports what the kept pairs occupy (what a compacted store holds), full_bytes()
// the full cache: retain mode itself saves no memory.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "cache/full_cache.h"

namespace echokv {

struct KvzipOptions {
  double ratio = 0.3;               // fraction of context pairs kept
  std::string level = "pair";       // pair | uniform (pair-uniform) | head
  std::string storage = "compact";  // compact (per-head variable length) | retain (full cache + mask)
  int64_t chunk_tokens = 2000;      // scoring chunk
  int64_t headroom = 256;           // compact: free slots per head for the question and answer
  std::vector<std::string> calibration;  // head level: text files whose head scores are max-merged
  int64_t calibration_tokens = 2000;     // context tokens taken from each calibration text
};

// scores: per layer float [Hkv, n]; returns per layer bool [Hkv, n] (true = keep).
std::vector<torch::Tensor> kvzip_keep_pairs(const std::vector<torch::Tensor>& scores, double ratio, bool uniform);

// Head level: a (layer, KV head)'s score is its best pair score on a calibration context;
// several calibration runs merge by max. head_scores: per layer float [Hkv].
std::vector<torch::Tensor> kvzip_head_scores(const std::vector<torch::Tensor>& pair_scores);
void kvzip_merge_head_scores(std::vector<torch::Tensor>& into, const std::vector<torch::Tensor>& more);
// Keeps the heads scoring strictly above the int(heads * ratio)-th best over all layers (the
// official threshold: 11 of 24 heads at 0.5; every head at ratio 1); a kept head
// keeps all n context tokens, an evicted head none. Returns per layer bool [Hkv, n].
std::vector<torch::Tensor> kvzip_keep_heads(const std::vector<torch::Tensor>& head_scores, double ratio, int64_t n);

class MaskedFullCache : public KVCache {
 public:
  explicit MaskedFullCache(std::unique_ptr<FullCache> base) : base_(std::move(base)) {}
  // keep: per layer bool [Hkv, n] for the context tokens at positions context_begin .. +n.
  void set_keep(int64_t context_begin, std::vector<torch::Tensor> keep);
  void clear_keep() { keep_.clear(); }
  FullCache& base() { return *base_; }

  int64_t next_position() const override { return base_->next_position(); }
  void append(int layer, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& positions) override {
    base_->append(layer, k, v, positions);
  }
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override;
  void advance(int64_t tokens) override { base_->advance(tokens); }
  int64_t bytes() const override;
  int64_t full_bytes() const override { return base_->bytes(); }
  void reset() override {
    base_->reset();
    keep_.clear();
  }

 private:
  std::unique_ptr<FullCache> base_;
  int64_t context_begin_ = 0;
  std::vector<torch::Tensor> keep_;  // per layer [Hkv, n]
};

}  // namespace echokv
