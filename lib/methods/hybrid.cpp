// EchoKV-Hybrid (arXiv 2603.22910): a values-only EchoKV cache (every key layer global), whose
// prompt keys are then pruned by ThinK on RoPE pairs. Size knob: `prune` (the fraction of key
// channels dropped); the stored ratio follows from the value plan and prune (the report shows
// the measured one).
#include "compress/observation_window.h"
#include "compress/think.h"
#include "core/clock.h"
#include "core/error.h"
#include "methods/echo_parts.h"

namespace echokv {
namespace {

class HybridMethod : public Method {
 public:
  HybridMethod(EchoParts parts, ThinKOptions think) : parts_(std::move(parts)), think_(think) {}
  std::string size_knob() const override {
    return "prune: key channels dropped by ThinK; the stored ratio follows from the value plan (echo_dir) and prune";
  }
  nlohmann::json options_json() const override {
    auto j = parts_.options_json();
    j["prune"] = think_.prune;
    j["obs_window"] = think_.window;
    return j;
  }
  bool scores_prompt() const override { return true; }
  void prepare(const MethodContext& context) override {
    parts_.load(context);
    for (int l = 0; l < context.model->config().num_hidden_layers; ++l)
      if (parts_.reconstructor->compressed(l, KVKind::Key))
        throw Error(parts_.echo_dir + ": hybrid needs reconstructors for a values-only plan (every key layer global); key layer " +
                    std::to_string(l) + " is compressed");
  }
  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan&, int64_t capacity,
                         int64_t chunk) const override {
    torch::NoGradGuard no_grad;
    PreparedPrompt out;
    const double t0 = monotonic_seconds();
    auto echo = parts_.make_cache(model, capacity);
    auto wq = prefill_with_window_queries(model, *echo, ids, think_.window, chunk);
    out.prefill_seconds = monotonic_seconds() - t0;
    const double t1 = monotonic_seconds();
    auto channels = think_pair_channels(echo_global_keys(*echo), wq.q, think_.prune);
    out.cache = prune_echo_keys(std::move(echo), std::move(channels), static_cast<int64_t>(ids.size()) - wq.window);
    out.scoring_seconds = monotonic_seconds() - t1;
    out.logits = wq.logits;
    return out;
  }

 private:
  EchoParts parts_;
  ThinKOptions think_;
};

}  // namespace

std::unique_ptr<Method> make_hybrid_method(MethodOptions& m) {
  auto parts = EchoParts::parse(m);
  ThinKOptions think;
  think.window = m.get<int64_t>("obs_window", think.window);
  think.prune = m.get<double>("prune", think.prune);
  if (m.kept_ratio()) m.fail("hybrid takes prune (key channels dropped); its ratio follows from the value plan");
  if (!(think.prune >= 0 && think.prune <= 1)) m.fail("think prune must be in [0, 1]");
  if (think.window < 1) m.fail("obs_window must be >= 1");
  return std::make_unique<HybridMethod>(std::move(parts), think);
}

}  // namespace echokv
