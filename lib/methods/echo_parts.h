// What the EchoKV-based methods (echo, hybrid, echo_kvzip) share: their cache options and the
// reconstructors, loaded once onto the model's device and dtype and checked against the base model.
#pragma once
#include <memory>
#include <string>

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

}  // namespace echokv
