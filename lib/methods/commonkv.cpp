// CommonKV (Qiao et al. 2025, arXiv 2508.16134): adjacent layers share an SVD down projection
// of their stacked K / V weights, each token's cache entry is the rank-r latent of the
// layer's input, and once the prompt is prefilled the latents of a group's layers are merged
// (stored once) for all but the least similar tokens and the sink / recent ones
// (compress/commonkv.h). The question is prefilled after the merge and stored per layer.
// Size knob: `ratio` = stored / full bytes after the prompt, met by the latent rank chosen per
// request (the merged counts follow from the prompt length): exact up to a whole rank.
#include <cmath>

#include "compress/commonkv.h"
#include "core/clock.h"
#include "core/error.h"
#include "methods/compacted_prefill.h"
#include "model/generate.h"

namespace echokv {
namespace {

struct CommonKVOptions {
  double ratio = 0.5;
  int64_t layers_per_group = 4;
  CommonKVLayout layout;
};

class CommonKVMethod : public Method {
 public:
  explicit CommonKVMethod(CommonKVOptions o) : o_(o) {}
  std::string size_knob() const override {
    return "ratio: bytes after the prompt, met by the latent rank chosen per request from the merged token counts "
           "(exact up to a whole rank; the question is stored per layer)";
  }
  std::optional<double> requested_ratio() const override { return o_.ratio; }
  nlohmann::json options_json() const override {
    return {{"ratio", o_.ratio},           {"layers_per_group", o_.layers_per_group}, {"unmerged", o_.layout.unmerged},
            {"sink", o_.layout.sink},      {"recent", o_.layout.recent},             {"chunk_tokens", o_.layout.chunk_tokens}};
  }
  std::string report_note() const override {
    return "CommonKV: groups of " + std::to_string(o_.layers_per_group) + " layers share an SVD basis (plain SVD of the "
           "stacked projections; the official code whitens with calibration activations, Palu's option) and " +
           std::to_string(o_.layout.unmerged).substr(0, 4) + " of the mergeable tokens stay per layer.";
  }
  bool scores_prompt() const override { return true; }
  void prepare(const MethodContext& context) override {
    bases_ = CommonKVBases::from_model(*context.model, o_.layers_per_group);
  }

  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan& span, int64_t capacity,
                         int64_t chunk) const override {
    if (!bases_) throw Error("commonkv: prepare() was not called");
    (void)capacity;
    torch::NoGradGuard no_grad;
    const int64_t n = static_cast<int64_t>(ids.size());
    int64_t end = span.context_end >= 0 ? std::min(span.context_end, n) : n;
    if (end <= 0) end = n;
    PreparedPrompt out;
    CommonKVLayout layout = o_.layout;
    layout.merge_tokens = end;
    layout.rank = rank_for(model.config(), end, n - end, layout, out.size_note);
    auto cache = std::make_unique<CommonKVCache>(model.config(), model.rope(), bases_, layout, model.device(), model.dtype());
    const double t0 = monotonic_seconds();
    out.logits = echokv::prefill(model, *cache, std::vector<int64_t>(ids.begin(), ids.begin() + end), chunk);
    out.prefill_seconds = monotonic_seconds() - t0;
    const double t1 = monotonic_seconds();
    cache->merge_prompt();
    out.scoring_seconds = monotonic_seconds() - t1;
    out.cache = std::move(cache);
    prefill_after_context(model, out, ids, end, chunk);
    return out;
  }

 private:
  // The widest rank whose latents fit ratio x the full bytes after the prompt.
  int64_t rank_for(const ModelConfig& c, int64_t n_merged, int64_t n_whole, const CommonKVLayout& layout,
                   std::string& note) const {
    const int64_t L = c.num_hidden_layers, G = bases_->layers_per_group, groups = bases_->merged_groups;
    const auto counts = commonkv_counts(n_merged, groups, layout);
    // latent tokens over all layers: merged groups' layers hold the protected and their unmerged
    // tokens, each group its merged ones once; other layers every token; the question per layer.
    const double latents = static_cast<double>(groups * G * counts.protected_tokens + G * counts.unmerged + counts.merged +
                                               (L - groups * G) * n_merged + L * n_whole);
    const double full = static_cast<double>(L * (n_merged + n_whole) * c.num_key_value_heads * c.head_dim);
    const auto r = static_cast<int64_t>(std::floor(o_.ratio * full / latents + 1e-9));
    if (r < 1) {
      note = "CommonKV stores at least rank 1: " + std::to_string(latents / full).substr(0, 6) + " of this prompt's bytes";
      return 1;
    }
    if (r > bases_->max_rank)
      note = "CommonKV's latent is at most rank " + std::to_string(bases_->max_rank) + " (min(G Hkv D, hidden size))";
    return std::min(r, bases_->max_rank);
  }

  CommonKVOptions o_;
  std::shared_ptr<const CommonKVBases> bases_;
};

}  // namespace

std::unique_ptr<Method> make_commonkv_method(MethodOptions& m) {
  CommonKVOptions o;
  o.ratio = m.kept_ratio().value_or(o.ratio);
  o.layers_per_group = m.get<int64_t>("layers_per_group", o.layers_per_group);
  o.layout.unmerged = m.get<double>("unmerged", o.layout.unmerged);
  o.layout.sink = m.get<int64_t>("sink_tokens", o.layout.sink);
  o.layout.recent = m.get<int64_t>("recent_tokens", o.layout.recent);
  o.layout.chunk_tokens = m.get<int64_t>("chunk_tokens", o.layout.chunk_tokens);
  if (!(o.ratio > 0)) m.fail("ratio must be in (0, 1]");
  if (o.layers_per_group < 1) m.fail("layers_per_group must be >= 1 (the official layer_step: 4)");
  if (!(o.layout.unmerged >= 0 && o.layout.unmerged <= 1)) m.fail("unmerged must be in [0, 1] (the official: 0.4)");
  if (o.layout.sink < 0 || o.layout.recent < 0) m.fail("sink_tokens and recent_tokens must be >= 0");
  if (o.layout.chunk_tokens <= 0) m.fail("chunk_tokens must be positive");
  return std::make_unique<CommonKVMethod>(o);
}

}  // namespace echokv
