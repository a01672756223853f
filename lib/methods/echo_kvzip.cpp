// EchoKV x KVzip: KVzip's pair scores (from a full-cache pass) choose, per layer, the context
// tokens an EchoKV cache keeps (max over the layer's KV heads, one global threshold over
// layers); the heads x tokens savings multiply. Size knob: `context_ratio` = the fraction of
// context tokens kept (KVzip's count), or `ratio` = stored / full bytes after the prompt: per
// prompt, the largest context_ratio whose stored bytes after the prompt stay <= ratio, found
// by bisection on the bytes of a throwaway EchoKV prefill of the whole prompt (bytes depend on
// the kept tokens only, not on the order of prefill and eviction; one extra prefill).
#include "cache/cache_factory.h"
#include "compress/kvzip_prefill.h"
#include "core/clock.h"
#include "core/error.h"
#include "eval/prompt_split.h"
#include "methods/echo_parts.h"
#include "model/generate.h"
#include "tokenizer/tokenizer.h"

namespace echokv {
namespace {

std::vector<int64_t> slice(const std::vector<int64_t>& ids, int64_t a, int64_t b) {
  return {ids.begin() + a, ids.begin() + b};
}

class EchoKvzipMethod : public Method {
 public:
  EchoKvzipMethod(EchoParts parts, double context_ratio, int64_t score_chunk, std::optional<double> bytes_ratio)
      : parts_(std::move(parts)), context_ratio_(context_ratio), score_chunk_(score_chunk), bytes_ratio_(bytes_ratio) {}
  std::string size_knob() const override {
    return bytes_ratio_ ? "ratio: bytes kept after the prompt (the most context tokens that fit, per prompt)"
                        : "context_ratio: the fraction of context tokens kept, on top of the EchoKV plan";
  }
  std::optional<double> requested_ratio() const override { return bytes_ratio_; }
  nlohmann::json options_json() const override {
    auto j = parts_.options_json();
    j["score_chunk"] = score_chunk_;
    if (bytes_ratio_) j["ratio"] = *bytes_ratio_;
    else j["context_ratio"] = context_ratio_;
    return j;
  }
  bool needs_tokenizer() const override { return true; }

  // The largest context ratio whose bytes after the whole prompt stay <= the requested ratio.
  double context_ratio_for_bytes(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan& span,
                                 const std::vector<torch::Tensor>& per_layer, int64_t chunk, std::string* note) const {
    auto probe = evict_echo_tokens(parts_.make_cache(model, static_cast<int64_t>(ids.size()) + 1));
    echokv::prefill(model, *probe, ids, chunk);
    auto stored = [&](double r) {
      probe->set_keep(span.context_begin, kvzip_keep_pairs(per_layer, r, false));
      return static_cast<double>(probe->bytes()) / static_cast<double>(probe->full_bytes());
    };
    if (stored(1.0) <= *bytes_ratio_) return 1.0;
    if (stored(0.0) > *bytes_ratio_) {
      *note = "the plan with every context token evicted still stores " + std::to_string(stored(0.0));
      return 0.0;
    }
    double lo = 0.0, hi = 1.0;  // stored(lo) <= request < stored(hi)
    for (int i = 0; i < 30 && hi - lo > 0.25 / static_cast<double>(span.context_end - span.context_begin + 1); ++i) {
      const double mid = 0.5 * (lo + hi);
      (stored(mid) <= *bytes_ratio_ ? lo : hi) = mid;
    }
    return lo;
  }
  bool scores_prompt() const override { return true; }
  void prepare(const MethodContext& context) override {
    parts_.load(context);
    if (!context.tokenizer) throw Error("EchoKV x KVzip needs the model's tokenizer for KVzip's repeat prompts");
    auto prompts = kvzip_prompts(*context.tokenizer, kvzip_repeat_postfix_ids(*context.tokenizer, context.chat));
    prompts.chunk_tokens = score_chunk_;
    scoring_.prompts = std::make_shared<KvzipPrompts>(prompts);
    scoring_.memo = context.shared->slot<KvzipScoreMemo>("kvzip_pair_scores");
  }
  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan& span, int64_t capacity,
                         int64_t chunk) const override {
    torch::NoGradGuard no_grad;
    const int64_t n = static_cast<int64_t>(ids.size());
    if (span.context_end < 0)
      throw Error("EchoKV x KVzip needs the prompt's context/question split (this benchmark's samples carry none)");
    PreparedPrompt out;
    double t0 = monotonic_seconds();
    std::vector<torch::Tensor> per_layer;  // [1, n_context] token scores
    {
      auto full = make_full_cache(model, span.context_end + 1);
      if (span.context_end > 0) echokv::prefill(model, *full, slice(ids, 0, span.context_end), chunk);
      for (const auto& s : kvzip_context_scores(model, scoring_, *full, ids, span, score_chunk_, &out.scores_reused))
        per_layer.push_back(std::get<0>(s.max(0, true)));
    }
    const double ratio = bytes_ratio_ ? context_ratio_for_bytes(model, ids, span, per_layer, chunk, &out.size_note) : context_ratio_;
    auto keep = kvzip_keep_pairs(per_layer, ratio, false);
    out.context_kept = kept_fraction(keep);
    out.scoring_seconds = monotonic_seconds() - t0;  // includes the full-cache prefill it needs
    t0 = monotonic_seconds();
    auto echo = evict_echo_tokens(parts_.make_cache(model, capacity));
    torch::Tensor logits;
    if (span.context_end > 0) logits = echokv::prefill(model, *echo, slice(ids, 0, span.context_end), chunk);
    echo->set_keep(span.context_begin, std::move(keep));
    if (span.context_end < n) logits = echokv::prefill(model, *echo, slice(ids, span.context_end, n), chunk);
    out.prefill_seconds = monotonic_seconds() - t0;
    out.logits = logits;
    out.cache = std::move(echo);
    return out;
  }

 private:
  EchoParts parts_;
  double context_ratio_;
  int64_t score_chunk_;
  std::optional<double> bytes_ratio_;
  KvzipScoring scoring_;
};

}  // namespace

std::unique_ptr<Method> make_echo_kvzip_method(MethodOptions& m) {
  auto parts = EchoParts::parse(m);
  const auto bytes_ratio = m.kept_ratio();
  if (bytes_ratio && m.has("context_ratio")) m.fail("give ratio (bytes kept) or context_ratio (context tokens kept), not both");
  const double context_ratio = m.get<double>("context_ratio", KvzipOptions{}.ratio);
  const int64_t score_chunk = m.get<int64_t>("score_chunk", KvzipOptions{}.chunk_tokens);
  if (!(context_ratio >= 0 && context_ratio <= 1)) m.fail("context_ratio must be in [0, 1]");
  if (score_chunk <= 0) m.fail("score_chunk must be positive");
  if (m.has("level")) m.fail("echo_kvzip chooses tokens per layer from pair scores (no level setting)");
  return std::make_unique<EchoKvzipMethod>(std::move(parts), context_ratio, score_chunk, bytes_ratio);
}

}  // namespace echokv
