// Prefill in chunks, then decode token by token: greedy or sampled (HF order: temperature,
// top-k, top-p), stopping at stop ids or max_new_tokens.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/llama.h"

namespace echokv {

struct SamplingOptions {
  bool greedy = true;
  double temperature = 1.0;
  int64_t top_k = 0;     // 0 = off
  double top_p = 1.0;    // 1 = off
  uint64_t seed = 0;
};

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingOptions sampling;
  std::vector<int64_t> stop_ids;
  // The first min_new_tokens tokens can be no stop id (their logits are -inf), as HF's
  // min_length (MinLengthLogitsProcessor over its eos_token_id list) does.
  int64_t min_new_tokens = 0;
  int64_t prefill_chunk = 512;
  // Called with each new token; return false to stop early.
  std::function<bool(int64_t token)> on_token;
};

struct GenerateResult {
  std::vector<int64_t> tokens;     // generated tokens (a stop id, when hit, is included)
  std::string stop_reason;         // "stop_id" | "max_new_tokens" | "callback"
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// Runs ids [B=1] through the model in chunks of `chunk` tokens; returns logits of the last
// position, float32 [V]. Peak activation memory is bounded by the chunk, not the prompt.
torch::Tensor prefill(LlamaModel& model, KVCache& cache, const std::vector<int64_t>& ids, int64_t chunk);

// Picks the next token from float32 logits [V].
class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  int64_t next(const torch::Tensor& logits);

 private:
  SamplingOptions options_;
  at::Generator generator_;
};

GenerateResult generate(LlamaModel& model, KVCache& cache, const std::vector<int64_t>& prompt,
                        const GenerateOptions& options);

// Decodes after a prompt already in `cache` (e.g. prefilled and compressed by a method that
// scores the prompt first); logits: float32 [V] of the prompt's last position.
GenerateResult generate_from(LlamaModel& model, KVCache& cache, torch::Tensor logits, const GenerateOptions& options);

}  // namespace echokv
