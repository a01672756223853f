// What the EchoKV-based methods (echo, hybrid, echo_kvzip) share: their cache options and the
// reconstructors, loaded once onto the model's device and dtype and checked against the base model.
#pragma once
#include <memory>
#include <string>

#include "compress/think.h"
#include "compress/token_mask_cache.h"
#include "echo/echo_cache.h"
#include "methods/method.h"

namespace echokv {

struct EchoParts {
  std::string echo_dir;        // trained reconstructors (echokv-train echo)
  EchoCacheOptions cache;      // sink_tokens, recent_tokens, chunk_tokens
  std::shared_ptr<const Reconstructor> reconstructor;  // after load()

  // Reads echo_dir (required), sink_tokens, recent_tokens, chunk_tokens.
  static EchoParts parse(MethodOptions& options);
  nlohmann::json options_json() const;
  // Loads the reconstructors for context.model (fingerprint check against context.model_dir).
  void load(const MethodContext& context);
  std::unique_ptr<EchoCache> make_cache(const LlamaModel& model, int64_t capacity) const;
};

// EchoKV composed with the other axes, from existing pieces (the EchoCache is not told):
//
// EchoKV-Hybrid: `echo`'s prompt keys of tokens [0, upto) keep only `channels` (per layer bool
// [Hkv, D]), zeroed in its global key stores before RoPE. Every key layer must be global (a
// values-only plan), and both channels of each RoPE pair (i, i + D/2) must agree, so zeroing
// before RoPE equals zeroing after it.
std::unique_ptr<PrunedKeyCache> prune_echo_keys(std::unique_ptr<EchoCache> echo, std::vector<torch::Tensor> channels,
                                                int64_t upto);
// Pre-RoPE key features [B, n, Hkv*D] of each (global) key layer, for ThinK's pair scores.
std::vector<torch::Tensor> echo_global_keys(EchoCache& echo);

// EchoKV x KVzip: `echo` with context tokens evicted per layer (set_keep: per layer bool [n]
// over the tokens at positions begin .. begin + n). Evicted tokens leave that layer's attention;
// bytes() drops a token's stored features from a store once no layer that reads them (the
// layer itself and, for a global store, every layer rebuilt from it) keeps the token. The
// features stay in memory; bytes() counts what a compacted store holds.
std::unique_ptr<TokenMaskCache> evict_echo_tokens(std::unique_ptr<EchoCache> echo);

}  // namespace echokv
