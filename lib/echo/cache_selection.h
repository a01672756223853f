// Chooses the KV cache per request: the same loaded model serves the full cache, the
// Palu-style low-rank cache or the EchoKV cache (reconstructors loaded once, checked against the base model), with no reload
// and the base weights untouched. Shared by every eval command (`--cache full|echo --echo DIR`).
#pragma once
#include <memory>
#include <string>

#include "cache/kv_cache.h"
#include "compress/kvzip_eviction.h"
#include "compress/kvzip_scoring.h"
#include "compress/low_rank_cache.h"
#include "compress/snapkv.h"
#include "compress/streaming_cache.h"
#include "compress/think.h"
#include "echo/echo_cache.h"
#include "model/llama.h"

namespace echokv {

struct CacheSelection {
  std::string kind = "full";  // full | echo | low_rank | streaming | kvzip | snapkv | think | hybrid | echo_kvzip
  std::shared_ptr<const Reconstructor> echo;         // kind == "echo"
  EchoCacheOptions echo_options;
  std::shared_ptr<const LowRankBases> low_rank;      // kind == "low_rank" (Palu-style)
  LowRankOptions low_rank_options;
  StreamingOptions streaming_options;                // kind == "streaming" (StreamingLLM)
  // Methods that look at the prompt before compressing it (prefill_prompt in prompt_prefill.h):
  KvzipOptions kvzip;                                // kind == "kvzip"
  std::shared_ptr<const KvzipPrompts> kvzip_prompts; // repeat prompts in the model's tokenizer
  std::vector<torch::Tensor> kvzip_head_scores;      // level "head": per layer [Hkv], from calibration
  // Pair scores of the last context scored, shared by the KVzip methods of a run (scoring never
  // sees the question: one pass serves every ratio and level of a sweep, as the official does).
  std::shared_ptr<KvzipScoreMemo> kvzip_memo;
  SnapKVOptions snapkv;                              // kind == "snapkv"
  ThinKOptions think;                                // kind == "think"

  // kind == "hybrid" (EchoKV-Hybrid: ThinK on keys, values-only EchoKV) uses think.prune;
  // kind == "echo_kvzip" (EchoKV on the tokens KVzip keeps) uses kvzip.ratio / chunk_tokens.

  // True for kinds whose cache is built after a scoring pass over the prompt.
  bool needs_prompt_pass() const {
    return kind == "kvzip" || kind == "snapkv" || kind == "think" || kind == "hybrid" || kind == "echo_kvzip";
  }
  bool uses_echo() const { return kind == "echo" || kind == "hybrid" || kind == "echo_kvzip"; }
};

// Validates the flags and loads the reconstructors onto the model's device and dtype.
// `model_dir` identifies the base model (fingerprint check).
CacheSelection select_cache(const std::string& kind, const std::string& echo_dir, const LlamaModel& model,
                            const std::string& model_dir, const EchoCacheOptions& echo_options = {},
                            const LowRankOptions& low_rank_options = {},
                            const StreamingOptions& streaming_options = {});

// prompt_tokens: the request's prompt length, for budgets set per request (streaming with a
// ratio); -1 = capacity.
std::unique_ptr<KVCache> make_cache(const LlamaModel& model, const CacheSelection& selection, int64_t capacity,
                                    int64_t batch = 1, int64_t prompt_tokens = -1);
// The EchoCache of an echo / hybrid / echo_kvzip selection.
std::unique_ptr<EchoCache> make_echo_cache(const LlamaModel& model, const CacheSelection& selection, int64_t capacity,
                                           int64_t batch = 1);

// "stored 12.5 MiB = 0.503 x full (3 layers global, ...)" for reports and stderr.
std::string cache_report_line(const KVCache& cache);

}  // namespace echokv
