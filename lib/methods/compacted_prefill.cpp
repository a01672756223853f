#include "methods/compacted_prefill.h"

#include "compress/compacted_cache.h"
#include "core/clock.h"
#include "model/generate.h"

namespace echokv {

PreparedPrompt prefill_window_compacted(LlamaModel& model, const std::vector<int64_t>& ids, int64_t window,
                                        int64_t capacity, int64_t chunk, const WindowKeepRule& keep) {
  torch::NoGradGuard no_grad;
  PreparedPrompt out;
  auto [full, wq, seconds] = prefill_full_with_window_queries(model, ids, window, capacity, chunk);
  out.prefill_seconds = seconds;
  const double t1 = monotonic_seconds();
  out.cache = std::make_unique<CompactedCache>(*full, model.rope(), 0, keep(*full, wq));
  out.scoring_seconds = monotonic_seconds() - t1;
  out.logits = wq.logits;
  return out;
}

void prefill_after_context(LlamaModel& model, PreparedPrompt& out, const std::vector<int64_t>& ids, int64_t end,
                           int64_t chunk) {
  if (end >= static_cast<int64_t>(ids.size())) return;
  const double t0 = monotonic_seconds();
  out.logits = echokv::prefill(model, *out.cache, std::vector<int64_t>(ids.begin() + end, ids.end()), chunk);
  out.prefill_seconds += monotonic_seconds() - t0;
}

}  // namespace echokv
