#include "methods/scored_eviction.h"

#include <algorithm>
#include <cmath>

#include "cache/cache_factory.h"
#include "compress/compacted_cache.h"
#include "compress/observation_window.h"
#include "compress/token_budgets.h"
#include "methods/compacted_prefill.h"
#include "core/clock.h"
#include "core/error.h"
#include "model/generate.h"

namespace echokv {

int64_t tokens_kept_in_range(double ratio, int64_t n, int64_t m, std::string* note) {
  if (m <= 0) return 0;
  const double want = (ratio * double(n) - double(n - m)) / double(m);
  if ((want < 0 || want > 1) && note) *note = "the uncompressed prefix and question alone do not fit the request";
  return static_cast<int64_t>(std::floor(std::min(1.0, std::max(0.0, want)) * double(m) + 1e-9));
}

namespace {

// ids[0, end) prefilled into `cache` with what the scorer reads; returns the last logits.
torch::Tensor prefill_for_scorer(LlamaModel& model, FullCache& cache, const std::vector<int64_t>& head, int64_t chunk,
                                 const TokenScorer& scorer, const ScorerSettings& settings,
                                 std::vector<torch::Tensor>& window_q, std::vector<torch::Tensor>& observed) {
  if (scorer.needs == ScorerNeeds::kKeys) return prefill(model, cache, head, chunk);
  if (scorer.needs == ScorerNeeds::kWindowQueries) {
    auto wq = prefill_with_window_queries(model, cache, head, scorer.window, chunk);
    window_q = std::move(wq.q);
    return wq.logits;
  }
  const int64_t n = static_cast<int64_t>(head.size());
  auto observer = scorer.observer(model, cache, n, settings);
  ForwardOptions fo;
  fo.last_only = true;
  fo.observer = observer.get();
  torch::Tensor logits;
  for (int64_t s = 0; s < n; s += chunk) {
    const int64_t len = std::min(chunk, n - s);
    auto piece = torch::tensor(std::vector<int64_t>(head.begin() + s, head.begin() + s + len), torch::kInt64).view({1, len});
    logits = model.forward(piece, cache, fo).view({-1});
  }
  observed = observer->take_scores();
  return logits;
}

class ScoredEvictionMethod : public Method {
 public:
  explicit ScoredEvictionMethod(ScoredEvictionOptions o) : o_(o) {}

  std::string size_knob() const override {
    std::string what = o_.budget == EvictionBudget::kChunks ? "top chunks of the context, in every head"
                       : o_.budget == EvictionBudget::kHeadAdaptive ? "top context tokens over all heads of a layer, head budgets differ"
                                                                    : "top context tokens per head";
    const std::string scores = o_.critical ? "CriticalKV-rescored " + o_.scorer->name : o_.scorer->name;
    return "ratio: bytes kept after the prompt (" + scores + " scores; " + what + "; prefix and question whole)";
  }
  std::optional<double> requested_ratio() const override { return o_.ratio; }
  nlohmann::json options_json() const override {
    nlohmann::json j = {{"ratio", o_.ratio}, {"scorer", o_.scorer->name}};
    if (o_.budget == EvictionBudget::kHeadAdaptive) j["alpha_safeguard"] = o_.alpha_safeguard;
    if (o_.budget == EvictionBudget::kChunks) j["chunk_length"] = o_.chunk_length;
    if (o_.scorer->name == "random") j["seed"] = o_.seed;
    if (o_.scorer->name == "expected_attention") {
      const auto& e = o_.scorer_settings.expected_attention;
      j["future_positions"] = e.future;
      j["sink_tokens"] = e.sinks;
      j["covariance"] = e.covariance;
      j["value_norm"] = e.value_norm;
      j["score_epsilon"] = e.epsilon;
    }
    if (o_.rerotate) j["rerotate"] = true;
    if (o_.critical) {
      j["epsilon"] = o_.critical_epsilon;
      j["first_stage_ratio"] = o_.first_stage_ratio;
    }
    return j;
  }
  bool scores_prompt() const override { return true; }

  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan& span, int64_t capacity,
                         int64_t chunk) const override {
    torch::NoGradGuard no_grad;
    const int64_t n = static_cast<int64_t>(ids.size());
    const bool split = span.context_end > 0;
    const int64_t begin = split ? span.context_begin : 0, end = split ? span.context_end : n, m = end - begin;
    PreparedPrompt out;
    const int64_t keep = tokens_kept_in_range(o_.ratio, n, m, &out.size_note);
    double t0 = monotonic_seconds();
    auto full = make_full_cache(model, capacity);
    std::vector<torch::Tensor> window_q, observed;
    out.logits = prefill_for_scorer(model, *full, std::vector<int64_t>(ids.begin(), ids.begin() + end), chunk,
                                    *o_.scorer, o_.scorer_settings, window_q, observed);
    out.prefill_seconds = monotonic_seconds() - t0;
    t0 = monotonic_seconds();
    out.cache = std::make_unique<CompactedCache>(*full, model.rope(), begin, keep_masks(model, *full, begin, end, keep,
                                                                                        window_q, observed));
    if (o_.rerotate) static_cast<CompactedCache&>(*out.cache).renumber_contiguous();
    out.scoring_seconds = monotonic_seconds() - t0;
    prefill_after_context(model, out, ids, end, chunk);
    return out;
  }

 private:
  // Per layer bool [Hkv, m].
  std::vector<torch::Tensor> keep_masks(const LlamaModel& model, const FullCache& full, int64_t begin, int64_t end,
                                        int64_t keep, const std::vector<torch::Tensor>& window_q,
                                        const std::vector<torch::Tensor>& observed) const {
    const int64_t m = end - begin, hkv = model.config().num_key_value_heads;
    const bool all = keep >= m || (o_.scorer->needs == ScorerNeeds::kWindowQueries && m <= o_.scorer->window);
    ScoringInputs in;
    in.cache = &full;
    in.begin = begin;
    in.end = end;
    in.scale = model.attention_options().scale;
    in.seed = o_.seed;
    in.window_queries = &window_q;
    in.observed = &observed;
    std::vector<torch::Tensor> masks;
    for (int l = 0; l < model.config().num_hidden_layers; ++l) {
      if (all) {
        masks.push_back(torch::ones({hkv, m}, torch::kBool));
        continue;
      }
      auto scores = o_.scorer->score(l, in);  // [Hkv, m]
      if (o_.critical) {
        const auto first = static_cast<int64_t>(std::floor(o_.first_stage_ratio * double(keep) + 1e-9));
        const auto norms = projected_value_l1_norms(full.values(l)[0].narrow(1, begin, m), model.layer(l).o_proj);
        scores = critical_scores(scores, norms, first, o_.critical_epsilon);
      }
      masks.push_back(o_.budget == EvictionBudget::kHeadAdaptive ? keep_head_adaptive(scores, keep, o_.alpha_safeguard)
                      : o_.budget == EvictionBudget::kChunks     ? keep_top_chunks(scores, double(keep) / double(m), o_.chunk_length)
                                                                 : keep_top_per_head(scores, keep));
    }
    return masks;
  }

  ScoredEvictionOptions o_;
};

}  // namespace

const TokenScorer& read_token_scorer(MethodOptions& m, const std::string& fallback) {
  const std::string name = m.get<std::string>("scorer", fallback);
  const TokenScorer* s = find_token_scorer(name);
  if (!s) m.fail("scorer must be one of " + token_scorer_names() + " (got '" + name + "')");
  return *s;
}

std::unique_ptr<Method> make_scorer_method(MethodOptions& m, const std::string& scorer) {
  ScoredEvictionOptions o;
  o.scorer = find_token_scorer(scorer);
  if (!o.scorer) throw Error("no token scorer named '" + scorer + "'");
  return make_scored_eviction_method(m, o);
}

std::unique_ptr<Method> make_scored_eviction_method(MethodOptions& m, ScoredEvictionOptions o) {
  o.ratio = m.kept_ratio().value_or(o.ratio);
  if (o.scorer->name == "random") {
    const auto seed = m.get<int64_t>("seed", static_cast<int64_t>(o.seed));
    if (seed < 0) m.fail("seed must be >= 0");
    o.seed = static_cast<uint64_t>(seed);
  }
  if (o.scorer->name == "expected_attention") {
    auto& e = o.scorer_settings.expected_attention;
    e.future = m.get<int64_t>("future_positions", e.future);
    e.sinks = m.get<int64_t>("sink_tokens", e.sinks);
    e.covariance = m.get<bool>("covariance", e.covariance);
    e.value_norm = m.get<bool>("value_norm", e.value_norm && !o.critical);  // kvpress: no ||v|| under CriticalKV
    e.epsilon = m.get<double>("score_epsilon", e.epsilon);
    if (e.future < 1) m.fail("future_positions must be >= 1");
    if (e.sinks < 0) m.fail("sink_tokens must be >= 0");
    if (!(e.epsilon >= 0)) m.fail("score_epsilon must be >= 0");
  }
  return std::make_unique<ScoredEvictionMethod>(o);
}

}  // namespace echokv
