// ChunkKV (Liu et al. 2025, "ChunkKV: Semantic-Preserving KV Cache Compression for Efficient
// Long-Context LLM Inference"; kvpress's ChunkKVPress): any context scorer (`scorer:`, default
// snapkv) summed over heads and averaged over chunks of `chunk_length` tokens (default 20);
// the top chunks are kept whole, the same in every head. The count of chunks is
// max(1, floor(fraction kept x chunks)), so the bytes meet the request up to one chunk.
// methods/scored_eviction.h: the size knob and the context / question split.
#include "methods/scored_eviction.h"

namespace echokv {

std::unique_ptr<Method> make_chunkkv_method(MethodOptions& m) {
  ScoredEvictionOptions o;
  o.scorer = &read_token_scorer(m, "snapkv");
  o.budget = EvictionBudget::kChunks;
  o.chunk_length = m.get<int64_t>("chunk_length", o.chunk_length);
  if (o.chunk_length < 1) m.fail("chunk_length must be >= 1");
  return make_scored_eviction_method(m, o);
}

}  // namespace echokv
