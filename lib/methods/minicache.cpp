// MiniCache (Liu et al. 2024, "MiniCache: KV Cache Compression in Depth Dimension for Large
// Language Models"): adjacent layers from a start layer on share one SLERP-merged direction
// per token, each keeping its magnitude; the most distinct tokens stay unmerged
// (compress/minicache.h). The prompt up to the question is merged once prefilled; the
// question is prefilled after it and, like generated tokens, stored whole.
// Size knob: `ratio` (stored / full bytes after the prompt) sets the retained count exactly
// (up to a whole token per head) and, unless `start_layer` is given, the start layer: the
// deepest start whose pairs can reach the ratio (merging keeps at least (D + 2) / 2D of a
// pair's bytes, so a ratio below what merging every layer gives is an error naming that
// floor). Without a ratio, `retain_fraction` of the merged tokens stay unmerged (default 0.05)
// from `start_layer` (default: the middle layer, the paper's choice).
#include <cmath>

#include "compress/minicache.h"
#include "core/clock.h"
#include "core/error.h"
#include "methods/compacted_prefill.h"
#include "model/generate.h"

namespace echokv {
namespace {

struct MiniCacheOptions {
  std::optional<double> ratio;
  std::optional<int64_t> start_layer;
  double retain_fraction = 0.05;
  double interpolation = 0.6;
  int64_t chunk_tokens = 2048;
};

// Stored / full elements per KV head after a prompt of n_merged + n_whole tokens, `retained`
// of the merged ones kept unmerged in each of `pairs` pairs (of `layers`, head size D).
double stored_fraction(int64_t layers, int64_t pairs, int64_t D, int64_t n_merged, int64_t n_whole, int64_t retained) {
  const double N = static_cast<double>(n_merged + n_whole);
  const double whole = 2.0 * D * static_cast<double>(layers - 2 * pairs) * N + 4.0 * D * pairs * n_whole;
  const double merged = pairs * (static_cast<double>(n_merged - retained) * (2.0 * D + 4) + retained * 4.0 * D);
  return (whole + merged) / (2.0 * D * layers * N);
}

class MiniCacheMethod : public Method {
 public:
  explicit MiniCacheMethod(MiniCacheOptions o) : o_(o) {}
  std::string size_knob() const override {
    return o_.ratio ? "ratio: bytes after the prompt, met by the unmerged (retained) tokens per head and the start layer "
                      "(exact up to a token per head; the question is stored whole)"
                    : "retain_fraction of the merged tokens unmerged per head, layers from start_layer merged in pairs";
  }
  std::optional<double> requested_ratio() const override { return o_.ratio; }
  nlohmann::json options_json() const override {
    nlohmann::json j = {{"interpolation", o_.interpolation}, {"chunk_tokens", o_.chunk_tokens}, {"start_layer", start_}};
    if (o_.ratio) j["ratio"] = *o_.ratio;
    else j["retain_fraction"] = o_.retain_fraction;
    return j;
  }
  std::string report_note() const override {
    return "MiniCache merges layers " + std::to_string(start_) + ".." + std::to_string(layers_ - 1) +
           " in pairs (SLERP t = " + std::to_string(o_.interpolation).substr(0, 4) + "); the retained tokens per head are " +
           (o_.ratio ? "set by the ratio" : "the most distant " + std::to_string(o_.retain_fraction).substr(0, 5)) + ".";
  }
  bool scores_prompt() const override { return true; }

  void prepare(const MethodContext& context) override {
    const auto& c = context.model->config();
    layers_ = c.num_hidden_layers;
    head_dim_ = c.head_dim;
    if (o_.start_layer) {
      if (*o_.start_layer < 0 || *o_.start_layer >= layers_)
        throw Error("minicache: start_layer " + std::to_string(*o_.start_layer) + " outside the model's " +
                    std::to_string(layers_) + " layers");
      start_ = *o_.start_layer;
    } else if (!o_.ratio) {
      start_ = layers_ / 2;
    } else {
      start_ = -1;  // the deepest start whose pairs can reach the ratio with nothing retained
      for (int64_t s = layers_ - 2; s >= 0 && start_ < 0; --s)
        if (stored_fraction(layers_, (layers_ - s) / 2, head_dim_, 1, 0, 0) <= *o_.ratio + 1e-12) start_ = s;
      if (start_ < 0) {
        const double floor = stored_fraction(layers_, layers_ / 2, head_dim_, 1, 0, 0);
        throw Error("minicache: ratio " + std::to_string(*o_.ratio) + " is below what merging every layer pair gives (" +
                    std::to_string(floor) + " of the bytes at head_dim " + std::to_string(head_dim_) +
                    "): MiniCache alone cannot store less");
      }
    }
  }

  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan& span, int64_t capacity,
                         int64_t chunk) const override {
    if (layers_ == 0) throw Error("minicache: prepare() was not called");
    torch::NoGradGuard no_grad;
    const int64_t n = static_cast<int64_t>(ids.size());
    int64_t end = span.context_end >= 0 ? std::min(span.context_end, n) : n;
    if (end <= 0) end = n;  // no context before the question: the whole prompt is merged
    PreparedPrompt out;
    const double t0 = monotonic_seconds();
    FullCache full(model.config(), model.rope(), 1, std::max(end, int64_t{1}), model.device(), model.dtype());
    out.logits = echokv::prefill(model, full, std::vector<int64_t>(ids.begin(), ids.begin() + end), chunk);
    out.prefill_seconds = monotonic_seconds() - t0;
    const double t1 = monotonic_seconds();
    MiniCacheLayout layout;
    layout.start_layer = start_;
    layout.interpolation = o_.interpolation;
    layout.merge_tokens = end;
    layout.retained = retained_for(end, n - end, out.size_note);
    out.cache = std::make_unique<MiniCacheCache>(model.config(), full, model.rope(), layout, o_.chunk_tokens);
    out.scoring_seconds = monotonic_seconds() - t1;
    (void)capacity;
    prefill_after_context(model, out, ids, end, chunk);
    return out;
  }

 private:
  int64_t retained_for(int64_t n_merged, int64_t n_whole, std::string& note) const {
    if (!o_.ratio) return std::min<int64_t>(n_merged, std::llround(o_.retain_fraction * static_cast<double>(n_merged)));
    const int64_t pairs = (layers_ - start_) / 2;
    if (pairs == 0 || n_merged == 0) return n_merged;
    // stored_fraction is linear in `retained`: solve for the most that stays within the ratio.
    const double at0 = stored_fraction(layers_, pairs, head_dim_, n_merged, n_whole, 0);
    const double at1 = stored_fraction(layers_, pairs, head_dim_, n_merged, n_whole, 1);
    const double r = std::floor((*o_.ratio - at0) / (at1 - at0) + 1e-9);
    if (r < 0) {
      note = "MiniCache from layer " + std::to_string(start_) + " stores at least " + std::to_string(at0).substr(0, 5) +
             " of this prompt (its question is stored whole)";
      return 0;
    }
    return std::min<int64_t>(n_merged, static_cast<int64_t>(r));
  }

  MiniCacheOptions o_;
  int64_t layers_ = 0, head_dim_ = 0, start_ = 0;
};

}  // namespace

std::unique_ptr<Method> make_minicache_method(MethodOptions& m) {
  MiniCacheOptions o;
  o.ratio = m.kept_ratio();
  if (m.has("start_layer")) o.start_layer = m.get<int64_t>("start_layer", 0);
  if (m.has("retain_fraction")) {
    if (o.ratio) m.fail("give ratio or retain_fraction, not both (the ratio sets the retained tokens)");
    o.retain_fraction = m.get<double>("retain_fraction", o.retain_fraction);
  }
  o.interpolation = m.get<double>("interpolation", o.interpolation);
  o.chunk_tokens = m.get<int64_t>("chunk_tokens", o.chunk_tokens);
  if (!(o.retain_fraction >= 0 && o.retain_fraction <= 1)) m.fail("retain_fraction must be in [0, 1]");
  if (!(o.interpolation >= 0 && o.interpolation <= 1)) m.fail("interpolation must be in [0, 1] (the paper: 0.6)");
  if (o.ratio && !(*o.ratio > 0)) m.fail("ratio must be in (0, 1]");
  if (o.chunk_tokens <= 0) m.fail("chunk_tokens must be positive");
  return std::make_unique<MiniCacheMethod>(o);
}

}  // namespace echokv
