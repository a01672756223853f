#include "methods/method.h"

#include <cstdio>

#include "core/clock.h"
#include "core/error.h"
#include "model/generate.h"

namespace echokv {

MethodOptions::MethodOptions(ConfigNode& node, std::string kind, std::string label)
    : node_(node), kind_(std::move(kind)), label_(std::move(label)) {}

std::optional<double> MethodOptions::kept_ratio() {
  const bool has_ratio = node_.has("ratio"), has_compression = node_.has("compression_ratio");
  (void)node_.get<double>("ratio", 0.0);  // both are options of every method that reads its size knob
  (void)node_.get<double>("compression_ratio", 0.0);
  if (has_ratio && has_compression)
    fail("give ratio (fraction of bytes kept) or compression_ratio (fraction removed), not both");
  if (!has_ratio && !has_compression) return std::nullopt;
  const double value = has_ratio ? node_.get<double>("ratio", 0.0) : node_.get<double>("compression_ratio", 0.0);
  if (!(value >= 0 && value <= 1))
    fail(std::string(has_ratio ? "ratio" : "compression_ratio") + " must be in [0, 1] (got " + std::to_string(value) + ")");
  return has_ratio ? value : 1.0 - value;
}

void MethodOptions::fail(const std::string& what) const { echokv::fail(node_.file(), label_ + ": " + what); }

std::unique_ptr<KVCache> Method::make_cache(const LlamaModel&, int64_t, int64_t) const {
  throw Error("method '" + kind() + "' scores a prompt's context before compressing it; run it from an eval config " +
              "(echokv-eval --config FILE with a method 'cache: " + kind() + "')");
}

PreparedPrompt Method::prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan&, int64_t capacity,
                               int64_t chunk) const {
  return prefill_plain(model, make_cache(model, capacity, static_cast<int64_t>(ids.size())), ids, chunk);
}

PreparedPrompt prefill_plain(LlamaModel& model, std::unique_ptr<KVCache> cache, const std::vector<int64_t>& ids,
                             int64_t chunk) {
  torch::NoGradGuard no_grad;
  if (ids.empty()) throw Error("prefill: empty prompt");
  PreparedPrompt out;
  const double t0 = monotonic_seconds();
  out.logits = echokv::prefill(model, *cache, ids, chunk);
  out.prefill_seconds = monotonic_seconds() - t0;
  out.cache = std::move(cache);
  return out;
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
