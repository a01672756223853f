#include "echo/cache_selection.h"

#include <cmath>
#include <cstdio>

#include "cache/cache_factory.h"
#include "core/error.h"

namespace echokv {

CacheSelection select_cache(const std::string& kind, const std::string& echo_dir, const LlamaModel& model,
                            const std::string& model_dir, const EchoCacheOptions& echo_options,
                            const LowRankOptions& low_rank_options, const StreamingOptions& streaming_options) {
  CacheSelection s;
  s.kind = kind;
  s.echo_options = echo_options;
  s.low_rank_options = low_rank_options;
  s.streaming_options = streaming_options;
  if (kind == "full" || kind == "low_rank" || kind == "streaming" || kind == "kvzip" || kind == "snapkv" ||
      kind == "think") {
    if (!echo_dir.empty()) throw Error("--echo is only used with --cache echo");
    if (kind == "low_rank") s.low_rank = LowRankBases::from_model(model, low_rank_options);
    return s;
  }
  if (!s.uses_echo())
    throw Error("--cache must be full, echo, low_rank, streaming, kvzip, snapkv, think, hybrid or echo_kvzip (got '" + kind + "')");
  if (echo_dir.empty()) throw Error("--cache " + kind + " needs --echo DIR (a folder from echokv-train echo)");
  auto r = std::make_shared<Reconstructor>(Reconstructor::load(echo_dir, model_dir));
  if (kind == "hybrid")
    for (int l = 0; l < model.config().num_hidden_layers; ++l)
      if (r->compressed(l, KVKind::Key))
        throw Error(echo_dir + ": hybrid needs reconstructors for a values-only plan (every key layer global); key layer " +
                    std::to_string(l) + " is compressed");
  r->to(model.device(), model.dtype());
  s.echo = r;
  return s;
}

std::unique_ptr<KVCache> make_cache(const LlamaModel& model, const CacheSelection& selection, int64_t capacity,
                                    int64_t batch, int64_t prompt_tokens) {
  if (selection.needs_prompt_pass())
    throw Error("cache '" + selection.kind + "' is built from a scored prompt: use prefill_prompt (prompt_prefill.h)");
  if (selection.kind == "full") return make_full_cache(model, capacity, batch);
  if (selection.kind == "streaming") {
    const auto& o = selection.streaming_options;
    const int64_t prompt = prompt_tokens >= 0 ? prompt_tokens : capacity;
    const int64_t window =
        o.ratio > 0 ? std::max<int64_t>(0, std::llround(o.ratio * static_cast<double>(prompt)) - o.sink_tokens) : o.window_tokens;
    return std::make_unique<StreamingCache>(model.config(), model.rope(), batch, o.sink_tokens, window, model.device(),
                                            model.dtype());
  }
  if (selection.kind == "low_rank") {
    LowRankOptions o = selection.low_rank_options;
    o.capacity = std::max<int64_t>(1, capacity);
    return std::make_unique<LowRankCache>(model.config(), model.rope(), selection.low_rank, batch, o, model.device(),
                                          model.dtype());
  }
  return make_echo_cache(model, selection, capacity, batch);
}

std::unique_ptr<EchoCache> make_echo_cache(const LlamaModel& model, const CacheSelection& selection, int64_t capacity,
                                           int64_t batch) {
  if (!selection.uses_echo() || !selection.echo) throw Error("cache '" + selection.kind + "' has no EchoKV reconstructors");
  EchoCacheOptions o = selection.echo_options;
  o.capacity = std::max<int64_t>(1, capacity);
  return std::make_unique<EchoCache>(model.config(), model.rope(), selection.echo, batch, o, model.device(),
                                     model.dtype());
}

std::string cache_report_line(const KVCache& cache) {
  const double mib = double(cache.bytes()) / (1024.0 * 1024.0);
  const double ratio = cache.full_bytes() > 0 ? double(cache.bytes()) / double(cache.full_bytes()) : 1.0;
  char buf[128];
  std::snprintf(buf, sizeof buf, "stored %.3f MiB = %.4f x full (%.3f MiB)", mib, ratio,
                double(cache.full_bytes()) / (1024.0 * 1024.0));
  return buf;
}

}  // namespace echokv
