// ThinK (Xu et al. 2024): query-driven pruning of key channels of the prompt tokens before the
// observation window. Size knob: `ratio` = stored / full bytes in [0.5, 1] (keys only are
// pruned), met by pruning floor(2 (1 - ratio) D) channels per head: exact up to a whole
// channel, and the window's tokens stay whole; or `prune` = the fraction of key channels dropped.
#include "compress/observation_window.h"
#include "compress/think.h"
#include "core/clock.h"
#include "methods/method.h"

namespace echokv {
namespace {

class ThinKMethod : public Method {
 public:
  ThinKMethod(ThinKOptions o, double ratio) : o_(o), ratio_(ratio) {}
  std::string size_knob() const override {
    return ratio_ > 0 ? "ratio: bytes kept (0.5 .. 1, keys only pruned; whole channels, the window stays whole)"
                      : "prune: the fraction of key channels dropped";
  }
  std::optional<double> requested_ratio() const override { return ratio_ > 0 ? std::optional<double>(ratio_) : std::nullopt; }
  nlohmann::json options_json() const override {
    nlohmann::json j = {{"obs_window", o_.window}};
    if (ratio_ > 0) j["ratio"] = ratio_;
    else j["prune"] = o_.prune;
    return j;
  }
  bool scores_prompt() const override { return true; }
  void prepare(const MethodContext& context) override {
    if (ratio_ > 0) o_.prune = think_prune_for_ratio(ratio_, context.model->config().head_dim);
  }
  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan&, int64_t capacity,
                         int64_t chunk) const override {
    torch::NoGradGuard no_grad;
    PreparedPrompt out;
    auto [full, wq, seconds] = prefill_full_with_window_queries(model, ids, o_.window, capacity, chunk);
    out.prefill_seconds = seconds;
    const double t1 = monotonic_seconds();
    auto channels = think_channels(*full, wq.q, o_);
    const int64_t n = static_cast<int64_t>(ids.size());
    out.cache = std::make_unique<PrunedKeyCache>(std::move(full), n - wq.window, std::move(channels));
    out.scoring_seconds = monotonic_seconds() - t1;
    out.logits = wq.logits;
    return out;
  }

 private:
  ThinKOptions o_;
  double ratio_;
};

}  // namespace

std::unique_ptr<Method> make_think_method(MethodOptions& m) {
  ThinKOptions o;
  o.window = m.get<int64_t>("obs_window", o.window);
  const auto ratio = m.kept_ratio();
  const bool has_prune = m.has("prune");
  o.prune = m.get<double>("prune", o.prune);
  if (ratio && has_prune) m.fail("think takes ratio or prune, not both");
  if (ratio && !(*ratio >= 0.5 && *ratio <= 1)) m.fail("think prunes keys only, so its ratio must be in [0.5, 1]");
  if (!ratio && !(o.prune >= 0 && o.prune <= 1)) m.fail("think prune must be in [0, 1]");
  if (o.window < 1) m.fail("obs_window must be >= 1");
  return std::make_unique<ThinKMethod>(o, ratio.value_or(0.0));
}

}  // namespace echokv
