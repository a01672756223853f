#include "compress/kvzip_prefill.h"

#include "cache/cache_factory.h"
#include "compress/compacted_cache.h"
#include "core/clock.h"
#include "core/error.h"
#include "model/generate.h"

namespace echokv {
namespace {

std::vector<int64_t> slice(const std::vector<int64_t>& ids, int64_t a, int64_t b) {
  return {ids.begin() + a, ids.begin() + b};
}

}  // namespace

std::vector<torch::Tensor> kvzip_context_scores(LlamaModel& model, const KvzipScoring& scoring, FullCache& full,
                                                const std::vector<int64_t>& ids, const PromptSpan& span,
                                                int64_t chunk_tokens, bool* reused) {
  if (!scoring.prompts) throw Error("KVzip needs the model's tokenizer for its repeat prompts");
  KvzipPrompts prompts = *scoring.prompts;
  prompts.chunk_tokens = chunk_tokens;
  const std::vector<int64_t> context = slice(ids, span.context_begin, span.context_end);
  std::vector<int64_t> context_key = slice(ids, 0, span.context_end);
  std::vector<int64_t> prompts_key = {chunk_tokens};
  prompts_key.insert(prompts_key.end(), prompts.postfix.begin(), prompts.postfix.end());
  *reused = false;
  auto* memo = scoring.memo.get();
  if (memo && memo->context == context_key) {
    auto it = memo->by_prompts.find(prompts_key);
    if (it != memo->by_prompts.end()) {
      ++memo->hits;
      *reused = true;
      return it->second;
    }
  }
  auto scores = kvzip_scores(model, full, span.context_begin, context, prompts);
  if (memo) {
    if (memo->context != context_key) {
      memo->context = std::move(context_key);
      memo->by_prompts.clear();
    }
    memo->by_prompts[prompts_key] = scores;
    ++memo->passes;
  }
  return scores;
}

double kept_fraction(const std::vector<torch::Tensor>& keep) {
  int64_t kept = 0, total = 0;
  for (const auto& k : keep) {
    kept += k.sum().item<int64_t>();
    total += k.numel();
  }
  return total ? static_cast<double>(kept) / static_cast<double>(total) : 1.0;
}

PreparedPrompt kvzip_prefill(LlamaModel& model, const KvzipOptions& o, double context_ratio, const KvzipScoring& scoring,
                             const std::vector<torch::Tensor>& head_scores, const std::vector<int64_t>& ids,
                             const PromptSpan& span, int64_t capacity, int64_t chunk) {
  torch::NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(ids.size());
  if (span.context_end < 0)
    throw Error("KVzip needs the prompt's context/question split (this benchmark's samples carry none)");
  if (span.context_begin < 0 || span.context_begin > span.context_end || span.context_end > n)
    throw Error("KVzip: context span outside the prompt");
  PreparedPrompt out;
  auto full = make_full_cache(model, std::max(capacity, n + 1));
  const int64_t context_tokens = span.context_end - span.context_begin;
  double t0 = monotonic_seconds();
  torch::Tensor logits;
  if (span.context_end > 0) logits = prefill(model, *full, slice(ids, 0, span.context_end), chunk);
  out.prefill_seconds = monotonic_seconds() - t0;
  std::vector<torch::Tensor> keep;
  t0 = monotonic_seconds();
  if (o.level == "head") {
    if (head_scores.empty()) throw Error("KVzip head level needs calibration head scores");
    keep = kvzip_keep_heads(head_scores, context_ratio, context_tokens);
  } else {
    const auto scores = kvzip_context_scores(model, scoring, *full, ids, span, o.chunk_tokens, &out.scores_reused);
    keep = kvzip_keep_pairs(scores, context_ratio, o.level == "uniform");
  }
  out.scoring_seconds = monotonic_seconds() - t0;
  out.context_kept = kept_fraction(keep);
  if (o.storage == "retain") {
    auto masked = std::make_unique<MaskedFullCache>(std::move(full));
    masked->set_keep(span.context_begin, std::move(keep));
    out.cache = std::move(masked);
  } else {
    out.cache = std::make_unique<CompactedCache>(*full, model.rope(), span.context_begin, keep, o.headroom);
  }
  t0 = monotonic_seconds();
  if (span.context_end < n) logits = prefill(model, *out.cache, slice(ids, span.context_end, n), chunk);
  out.prefill_seconds += monotonic_seconds() - t0;
  out.logits = logits;
  return out;
}

std::vector<torch::Tensor> kvzip_calibrate_heads(LlamaModel& model, const KvzipPrompts& prompts,
                                                 const std::vector<int64_t>& prefix,
                                                 const std::vector<std::vector<int64_t>>& contexts, int64_t chunk) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> merged;
  for (const auto& context : contexts) {
    if (context.empty()) continue;
    std::vector<int64_t> ids = prefix;
    ids.insert(ids.end(), context.begin(), context.end());
    auto full = make_full_cache(model, static_cast<int64_t>(ids.size()) + 1);
    prefill(model, *full, ids, chunk);
    kvzip_merge_head_scores(merged, kvzip_head_scores(kvzip_scores(model, *full, static_cast<int64_t>(prefix.size()),
                                                                   context, prompts)));
  }
  if (merged.empty()) throw Error("KVzip head calibration: no calibration context");
  return merged;
}

}  // namespace echokv
