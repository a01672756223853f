// KVzip's context-reconstruction scoring (arXiv 2505.23416, official code semantics; spec in
// ../shared/docs/method-kvzip.md): with [prefix, context] prefilled in a full cache, each
// chunk of `chunk_tokens` context tokens is teacher-forced after a repeat prompt
//   first chunk : "\n\nRepeat the previous context exactly."
//   later chunks: "\n\nRepeat the part of the previous context exactly, starting with " +
//                 the last `overlap_tokens` tokens of the previous chunk
// followed by the postfix (the assistant-turn opener) and the chunk itself, at positions
// after the whole context (removed from the cache afterwards). In every layer the repeat
// tokens' post-RoPE queries attend over [the whole prefix (sink), the current chunk, the
// repeat tokens themselves] only, causal only inside the repeat block; a context pair's
// score is the max of its attention over the repeat queries and over the query heads of
// its KV head's GQA group.
#pragma once
#include <map>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "cache/full_cache.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

namespace echokv {

struct KvzipPrompts {
  std::vector<int64_t> first, later, postfix;  // token ids (no BOS)
  int64_t overlap_tokens = 8;
  int64_t chunk_tokens = 2000;
};

// Pair scores of the last prompt prefix + context scored, one entry per (chunk size, repeat
// postfix); a later request for the same context and prompts gets them without a pass.
struct KvzipScoreMemo {
  std::vector<int64_t> context;  // prefix and context ids of the entries
  std::map<std::vector<int64_t>, std::vector<torch::Tensor>> by_prompts;  // [chunk, postfix...] -> scores
  int64_t hits = 0, passes = 0;
};

// The official prompt strings encoded with `tokenizer` (postfix given as text or ids).
KvzipPrompts kvzip_prompts(const Tokenizer& tokenizer, const std::vector<int64_t>& postfix_ids);

// cache holds exactly prefix_len + context_ids.size() tokens (prefilled). Returns per layer
// float32 [Hkv, n_context] scores; the cache is left as it was.
std::vector<torch::Tensor> kvzip_scores(LlamaModel& model, FullCache& cache, int64_t prefix_len,
                                        const std::vector<int64_t>& context_ids, const KvzipPrompts& prompts);

}  // namespace echokv
