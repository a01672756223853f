// The method seam: a KV-cache compression method as the harness sees it. A method parses and
// validates its own options (MethodOptions: an unknown or foreign key is an error naming the
// file, the method and the key), says what its size knob means, and for a prompt (with its
// context / question split) builds the prefilled cache, or a cache for token-by-token use.
// One file per method under lib/methods/, one line per method in registry.cpp. Storage and
// selection live below (lib/cache, lib/compress, lib/echo); a method composes them.
//
//   config entry {name, cache: KIND, options...}
//        -> registry: KIND's factory(MethodOptions)      parse + validate, once
//        -> Method::prepare(MethodContext)                load reconstructors, calibrate, once per run
//        -> Method::prefill(model, prompt ids, span)      per request: the prefilled KVCache
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/kv_cache.h"
#include "cache/prepared_prompt.h"
#include "core/yaml_config.h"
#include "model/llama.h"
#include "tokenizer/chat_template.h"

namespace echokv {

class Tokenizer;

// Objects the methods of one run share (e.g. KVzip's pair scores of the last context): each
// method names its own slot; the harness only owns the map.
class SharedState {
 public:
  template <typename T>
  std::shared_ptr<T> slot(const std::string& name) {
    auto& p = slots_[name];
    if (!p) p = std::make_shared<T>();
    return std::static_pointer_cast<T>(p);
  }

 private:
  std::map<std::string, std::shared_ptr<void>> slots_;
};

// What a run gives its methods once, before any prompt.
struct MethodContext {
  LlamaModel* model = nullptr;
  std::string model_dir;                 // the base model folder (reconstructor fingerprint check)
  const Tokenizer* tokenizer = nullptr;  // null where the run has none (token-id fidelity)
  ChatOptions chat;
  int64_t prefill_chunk = 512;
  std::string artifacts_dir;  // where a method writes what it computed once (empty: nowhere)
  std::shared_ptr<SharedState> shared = std::make_shared<SharedState>();
};

// A method entry's options, read by the method's own factory. Every read key is an option of
// the method; the registry rejects the keys no factory read.
class MethodOptions {
 public:
  MethodOptions(ConfigNode& node, std::string kind, std::string label);

  template <typename T>
  T get(const std::string& key, const T& fallback) {
    return node_.get<T>(key, fallback);
  }
  template <typename T>
  T require(const std::string& key) {
    return node_.require<T>(key);
  }
  bool has(const std::string& key) const { return node_.has(key); }
  // A nested mapping (e.g. a composed method's inner entry), checked by its own reader.
  ConfigNode child(const std::string& key) { return node_.child(key); }
  // Paths relative to the config file's folder (core/yaml_config.h).
  std::string get_path(const std::string& key, const std::string& fallback) { return node_.get_path(key, fallback); }
  std::vector<std::string> path_list(const std::string& key) { return node_.path_list(key); }
  // The size knob every method shares: `ratio` = fraction of the full cache's bytes kept after
  // the prompt, or `compression_ratio` = the fraction removed (kvpress's convention). Both
  // given, or a value outside [0, 1], is an error; nullopt when neither is given.
  std::optional<double> kept_ratio();
  // An error naming the file, the method and the problem.
  [[noreturn]] void fail(const std::string& what) const;
  const std::string& file() const { return node_.file(); }
  const std::string& kind() const { return kind_; }
  const std::string& label() const { return label_; }

 private:
  ConfigNode& node_;
  std::string kind_, label_;
};

class Method {
 public:
  virtual ~Method() = default;

  const std::string& kind() const { return kind_; }
  // What the size knob means for this method and how exactly it is met, in one sentence.
  virtual std::string size_knob() const = 0;
  // The stored / full bytes after the prompt this entry asked for (nullopt: not a ratio request).
  virtual std::optional<double> requested_ratio() const { return std::nullopt; }
  // The options as read (defaults filled in), for metrics.json.
  virtual nlohmann::json options_json() const = 0;
  // A Markdown sentence the report prints under its table (empty: none).
  virtual std::string report_note() const { return ""; }

  virtual bool needs_tokenizer() const { return false; }
  // True when the cache is built after a scoring pass over the prompt: no token-by-token use,
  // and fidelity needs a context to compress.
  virtual bool scores_prompt() const { return false; }
  // Once per run, before any prompt: load reconstructors, calibrate, ...
  virtual void prepare(const MethodContext& context) { (void)context; }

  // A cache for token-by-token use. prompt_tokens: the request's prompt length, for budgets set
  // per request; -1 = capacity. Methods that score a prompt refuse (use prefill).
  virtual std::unique_ptr<KVCache> make_cache(const LlamaModel& model, int64_t capacity, int64_t prompt_tokens = -1) const;
  // The prompt `ids` prefilled into this method's cache (capacity >= ids.size()).
  virtual PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan& span,
                                 int64_t capacity, int64_t chunk) const;

 private:
  friend std::unique_ptr<Method> make_method(ConfigNode& entry, const std::string& label);
  std::string kind_;
};

// Prefill `ids` into `cache` chunk by chunk, timed (the plain path every cache-only method takes).
PreparedPrompt prefill_plain(LlamaModel& model, std::unique_ptr<KVCache> cache, const std::vector<int64_t>& ids,
                             int64_t chunk);

// "stored 12.5 MiB = 0.503 x full (...)" for reports and stderr.
std::string cache_report_line(const KVCache& cache);

}  // namespace echokv
