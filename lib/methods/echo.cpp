// EchoKV (arXiv 2603.22910): the plan's kept heads are stored, the others rebuilt per token by
// trained linear maps from what is kept; the first sink and last recent tokens stay exact.
// Size knob: the trained plan (echo_dir) fixes the stored fraction of an old token's bytes;
// `ratio`, if given, must equal the plan's. The measured ratio after a prompt is higher by the
// uncompressed sink + recent tokens (the report shows both).
#include <cmath>

#include "core/error.h"
#include "methods/echo_parts.h"

namespace echokv {
namespace {

class EchoMethod : public Method {
 public:
  EchoMethod(EchoParts parts, std::optional<double> ratio) : parts_(std::move(parts)), ratio_(ratio) {}
  std::string size_knob() const override {
    return "the trained plan's ratio (echo_dir); sink + recent tokens are stored in full, so short prompts store more";
  }
  std::optional<double> requested_ratio() const override { return ratio_; }
  nlohmann::json options_json() const override { return parts_.options_json(); }
  void prepare(const MethodContext& context) override {
    parts_.load(context);
    const double plan = parts_.reconstructor->plan().ratio();
    if (ratio_ && std::abs(*ratio_ - plan) > 0.005)
      throw Error(parts_.echo_dir + ": its plan stores " + std::to_string(plan) + " of the bytes, the method asks for ratio " +
                  std::to_string(*ratio_) + " (train reconstructors for that ratio, or drop ratio)");
    if (!ratio_) ratio_ = plan;
  }
  std::unique_ptr<KVCache> make_cache(const LlamaModel& model, int64_t capacity, int64_t) const override {
    return parts_.make_cache(model, capacity);
  }
  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan& span, int64_t capacity,
                         int64_t chunk) const override {
    auto out = Method::prefill(model, ids, span, capacity, chunk);
    const double measured = static_cast<double>(out.cache->bytes()) / static_cast<double>(out.cache->full_bytes());
    if (ratio_ && measured > *ratio_ + 0.01)
      out.size_note = "sink + recent tokens (" + std::to_string(parts_.cache.sink_tokens + parts_.cache.recent_tokens) +
                      ") are stored in full";
    return out;
  }

 private:
  EchoParts parts_;
  std::optional<double> ratio_;
};

}  // namespace

std::unique_ptr<Method> make_echo_method(MethodOptions& m) {
  auto parts = EchoParts::parse(m);
  return std::make_unique<EchoMethod>(std::move(parts), m.kept_ratio());
}

}  // namespace echokv
