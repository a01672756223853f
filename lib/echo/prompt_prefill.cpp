#include "echo/prompt_prefill.h"

#include "cache/cache_factory.h"
#include "compress/compacted_cache.h"
#include "compress/observation_window.h"
#include "core/clock.h"
#include "core/error.h"
#include "model/generate.h"

namespace echokv {
namespace {

std::vector<int64_t> slice(const std::vector<int64_t>& ids, int64_t a, int64_t b) {
  return {ids.begin() + a, ids.begin() + b};
}

// KVzip pair scores of the context in `full` (which holds prefix + context), from the memo
// when the same prefix, context and prompts were scored last.
std::vector<torch::Tensor> memo_scores(LlamaModel& model, const CacheSelection& sel, FullCache& full,
                                       const std::vector<int64_t>& ids, const PromptSpan& span, int64_t chunk_tokens,
                                       bool* reused) {
  KvzipPrompts prompts = *sel.kvzip_prompts;
  prompts.chunk_tokens = chunk_tokens;
  const std::vector<int64_t> context = slice(ids, span.context_begin, span.context_end);
  std::vector<int64_t> context_key = slice(ids, 0, span.context_end);
  std::vector<int64_t> prompts_key = {chunk_tokens};
  prompts_key.insert(prompts_key.end(), prompts.postfix.begin(), prompts.postfix.end());
  *reused = false;
  auto* memo = sel.kvzip_memo.get();
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

PreparedPrompt prefill_kvzip(LlamaModel& model, const CacheSelection& sel, const std::vector<int64_t>& ids,
                             const PromptSpan& span, int64_t capacity, int64_t chunk) {
  const int64_t n = static_cast<int64_t>(ids.size());
  if (span.context_end < 0)
    throw Error("KVzip needs the prompt's context/question split (this benchmark's samples carry none)");
  if (span.context_begin < 0 || span.context_begin > span.context_end || span.context_end > n)
    throw Error("KVzip: context span outside the prompt");
  const auto& o = sel.kvzip;
  PreparedPrompt out;
  auto full = make_full_cache(model, std::max(capacity, n + 1));
  const std::vector<int64_t> context = slice(ids, span.context_begin, span.context_end);
  double t0 = monotonic_seconds();
  torch::Tensor logits;
  if (span.context_end > 0) logits = prefill(model, *full, slice(ids, 0, span.context_end), chunk);
  out.prefill_seconds = monotonic_seconds() - t0;
  std::vector<torch::Tensor> keep;
  t0 = monotonic_seconds();
  if (o.level == "head") {
    if (sel.kvzip_head_scores.empty()) throw Error("KVzip head level needs calibration head scores");
    keep = kvzip_keep_heads(sel.kvzip_head_scores, o.ratio, static_cast<int64_t>(context.size()));
  } else {
    if (!sel.kvzip_prompts) throw Error("KVzip needs the model's tokenizer for its repeat prompts");
    const auto scores = memo_scores(model, sel, *full, ids, span, o.chunk_tokens, &out.scores_reused);
    keep = kvzip_keep_pairs(scores, o.ratio, o.level == "uniform");
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

// EchoKV x KVzip: KVzip's scores (from a full-cache pass) choose, per layer, the context tokens
// kept (max over the layer's KV heads, one global threshold over layers); the EchoKV cache holds
// the prompt and masks the rest.
PreparedPrompt prefill_echo_kvzip(LlamaModel& model, const CacheSelection& sel, const std::vector<int64_t>& ids,
                                  const PromptSpan& span, int64_t capacity, int64_t chunk) {
  const int64_t n = static_cast<int64_t>(ids.size());
  if (span.context_end < 0) throw Error("EchoKV x KVzip needs the prompt's context/question split (this benchmark's samples carry none)");
  if (!sel.kvzip_prompts) throw Error("EchoKV x KVzip needs the model's tokenizer for KVzip's repeat prompts");
  PreparedPrompt out;
  double t0 = monotonic_seconds();
  std::vector<torch::Tensor> per_layer;  // [1, n_context] token scores
  {
    auto full = make_full_cache(model, span.context_end + 1);
    if (span.context_end > 0) prefill(model, *full, slice(ids, 0, span.context_end), chunk);
    for (const auto& s : memo_scores(model, sel, *full, ids, span, sel.kvzip.chunk_tokens, &out.scores_reused))
      per_layer.push_back(std::get<0>(s.max(0, true)));
  }
  auto keep = kvzip_keep_pairs(per_layer, sel.kvzip.ratio, false);
  out.context_kept = kept_fraction(keep);
  out.scoring_seconds = monotonic_seconds() - t0;  // includes the full-cache prefill it needs
  t0 = monotonic_seconds();
  auto echo = make_echo_cache(model, sel, capacity);
  torch::Tensor logits;
  if (span.context_end > 0) logits = prefill(model, *echo, slice(ids, 0, span.context_end), chunk);
  echo->set_token_keep(span.context_begin, std::move(keep));
  if (span.context_end < n) logits = prefill(model, *echo, slice(ids, span.context_end, n), chunk);
  out.prefill_seconds = monotonic_seconds() - t0;
  out.logits = logits;
  out.cache = std::move(echo);
  return out;
}

// EchoKV-Hybrid: values-only EchoKV cache, keys pruned by ThinK on RoPE pairs after the prompt.
PreparedPrompt prefill_hybrid(LlamaModel& model, const CacheSelection& sel, const std::vector<int64_t>& ids,
                              int64_t capacity, int64_t chunk) {
  PreparedPrompt out;
  const double t0 = monotonic_seconds();
  auto echo = make_echo_cache(model, sel, capacity);
  auto wq = prefill_with_window_queries(model, *echo, ids, sel.think.window, chunk);
  out.prefill_seconds = monotonic_seconds() - t0;
  const double t1 = monotonic_seconds();
  std::vector<torch::Tensor> keys;
  for (int l = 0; l < model.config().num_hidden_layers; ++l) keys.push_back(echo->global_key_features(l));
  echo->prune_key_channels(think_pair_channels(keys, wq.q, sel.think.prune), static_cast<int64_t>(ids.size()) - wq.window);
  out.scoring_seconds = monotonic_seconds() - t1;
  out.logits = wq.logits;
  out.cache = std::move(echo);
  return out;
}

}  // namespace

PreparedPrompt prefill_prompt(LlamaModel& model, const CacheSelection& sel, const std::vector<int64_t>& ids,
                              const PromptSpan& span, int64_t capacity, int64_t chunk) {
  torch::NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n == 0) throw Error("prefill_prompt: empty prompt");
  capacity = std::max(capacity, n);
  if (sel.kind == "kvzip") return prefill_kvzip(model, sel, ids, span, capacity, chunk);
  if (sel.kind == "echo_kvzip") return prefill_echo_kvzip(model, sel, ids, span, capacity, chunk);
  if (sel.kind == "hybrid") return prefill_hybrid(model, sel, ids, capacity, chunk);
  PreparedPrompt out;
  const double t0 = monotonic_seconds();
  if (sel.kind == "snapkv" || sel.kind == "think") {
    auto full = make_full_cache(model, capacity);
    const int64_t window = sel.kind == "snapkv" ? sel.snapkv.window : sel.think.window;
    auto wq = prefill_with_window_queries(model, *full, ids, window, chunk);
    out.prefill_seconds = monotonic_seconds() - t0;
    const double t1 = monotonic_seconds();
    if (sel.kind == "snapkv") {
      const auto keep = snapkv_keep(*full, wq.q, model.attention_options().scale, sel.snapkv);
      out.cache = std::make_unique<CompactedCache>(*full, model.rope(), 0, keep);
    } else {
      auto channels = think_channels(*full, wq.q, sel.think);
      out.cache = std::make_unique<PrunedKeyCache>(std::move(full), n - wq.window, std::move(channels));
    }
    out.scoring_seconds = monotonic_seconds() - t1;
    out.logits = wq.logits;
    return out;
  }
  out.cache = make_cache(model, sel, capacity, 1, n);
  out.logits = prefill(model, *out.cache, ids, chunk);
  out.prefill_seconds = monotonic_seconds() - t0;
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
