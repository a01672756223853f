// KVzip eviction from pair scores (../shared/docs/method-kvzip.md), and the "retain" storage
// (kvzip `storage: retain`): the full cache plus a keep-mask that attention applies, the way
// kvpress evicts; it saves no memory and serves as the check that compacted storage
// (compacted_cache.h) gives the same outputs. Ratio here = fraction of *context* pairs kept
// (lib/methods/kvzip.cpp maps the method's bytes ratio onto it); the prefix (sink) and every
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
#include "compress/token_mask_cache.h"

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

// KVzip's retain storage: a full cache whose evicted (layer, KV head, token) pairs attention
// masks; bytes() counts the kept pairs only (what the compacted store holds).
class MaskedFullCache : public TokenMaskCache {
 public:
  explicit MaskedFullCache(std::unique_ptr<FullCache> base);
};

}  // namespace echokv
