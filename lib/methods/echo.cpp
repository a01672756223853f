// EchoKV (arXiv 2603.22910): the plan's kept heads are stored, the others rebuilt per token by
// trained linear maps from what is kept; the first sink and last recent tokens stay exact.
// Size knob: the trained plan (echo_dir) fixes the stored fraction of an old token's bytes;
// `ratio`, if given, must equal the plan's. The measured ratio after a prompt is higher by the
// uncompressed sink + recent tokens (the report shows both).
// On-demand transition (`switch_at_tokens` or `memory_budget_mib`): a request starts on the
// full cache and converts in place to the EchoKV cache when it would pass that many tokens or
// that many MiB of full-cache bytes (echo/switching_cache.h).
#include <cmath>

#include "core/error.h"
#include "echo/switching_cache.h"
#include "methods/echo_parts.h"

namespace echokv {
namespace {

class EchoMethod : public Method {
 public:
  EchoMethod(EchoParts parts, std::optional<double> ratio, int64_t switch_tokens, double budget_mib)
      : parts_(std::move(parts)), ratio_(ratio), switch_tokens_(switch_tokens), budget_mib_(budget_mib) {}
  std::string size_knob() const override {
    return "the trained plan's ratio (echo_dir); sink + recent tokens are stored in full, so short prompts store more";
  }
  std::optional<double> requested_ratio() const override { return ratio_; }
  nlohmann::json options_json() const override {
    auto j = parts_.options_json();
    if (switch_tokens_ > 0) j["switch_at_tokens"] = switch_tokens_;
    if (budget_mib_ > 0) j["memory_budget_mib"] = budget_mib_;
    return j;
  }
  void prepare(const MethodContext& context) override {
    parts_.load(context);
    const double plan = parts_.reconstructor->plan().ratio();
    if (ratio_ && std::abs(*ratio_ - plan) > 0.005)
      throw Error(parts_.echo_dir + ": its plan stores " + std::to_string(plan) + " of the bytes, the method asks for ratio " +
                  std::to_string(*ratio_) + " (train reconstructors for that ratio, or drop ratio)");
    if (!ratio_) ratio_ = plan;
  }
  std::unique_ptr<KVCache> make_cache(const LlamaModel& model, int64_t capacity, int64_t) const override {
    const int64_t limit = switch_limit(model);
    if (limit < 0) return parts_.make_cache(model, capacity);
    const LlamaModel* m = &model;
    auto make_full = [m, capacity, limit] {
      return std::make_unique<FullCache>(m->config(), m->rope(), 1, std::max<int64_t>(1, std::min(capacity, limit)),
                                         m->device(), m->dtype());
    };
    auto make_echo = [this, m, capacity] { return parts_.make_cache(*m, capacity); };
    return std::make_unique<SwitchingEchoCache>(make_full, limit, make_echo, model.rope());
  }
  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan& span, int64_t capacity,
                         int64_t chunk) const override {
    auto out = Method::prefill(model, ids, span, capacity, chunk);
    const double measured = static_cast<double>(out.cache->bytes()) / static_cast<double>(out.cache->full_bytes());
    const auto* switching = dynamic_cast<const SwitchingEchoCache*>(out.cache.get());
    if (switching && !switching->switched())
      out.size_note = "the prompt fits the full-cache budget (" + std::to_string(switch_limit(model)) +
                      " tokens): stored in full until generation passes it";
    else if (ratio_ && measured > *ratio_ + 0.01)
      out.size_note = "sink + recent tokens (" + std::to_string(parts_.cache.sink_tokens + parts_.cache.recent_tokens) +
                      ") are stored in full";
    return out;
  }

 private:
  // Tokens the full cache may hold before the switch (-1: no switch, EchoKV from the start).
  int64_t switch_limit(const LlamaModel& model) const {
    if (switch_tokens_ > 0) return switch_tokens_;
    if (budget_mib_ <= 0) return -1;
    const auto& c = model.config();
    const double per_token = 2.0 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim *
                             static_cast<double>(c10::elementSize(model.dtype()));
    return static_cast<int64_t>(std::floor(budget_mib_ * 1048576.0 / per_token));
  }

  EchoParts parts_;
  std::optional<double> ratio_;
  int64_t switch_tokens_ = 0;
  double budget_mib_ = 0;
};

}  // namespace

std::unique_ptr<Method> make_echo_method(MethodOptions& m) {
  auto parts = EchoParts::parse(m);
  const auto switch_tokens = m.get<int64_t>("switch_at_tokens", 0);
  const auto budget_mib = m.get<double>("memory_budget_mib", 0.0);
  if (switch_tokens < 0 || budget_mib < 0) m.fail("switch_at_tokens and memory_budget_mib must be positive (0: EchoKV from the start)");
  if (switch_tokens > 0 && budget_mib > 0) m.fail("give switch_at_tokens or memory_budget_mib, not both");
  return std::make_unique<EchoMethod>(std::move(parts), m.kept_ratio(), switch_tokens, budget_mib);
}

}  // namespace echokv
