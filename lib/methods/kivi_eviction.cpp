// KIVI x token eviction: an eviction method (`eviction:`, any registered method whose prefill
// keeps a compacted per-head cache: kvzip, snapkv, knorm, adakv, ...) chooses the tokens, then
// every kept (layer, head) list is stored under KIVI's policy (compress/kivi_compacted_cache.h),
// as KVzip's paper and the EchoKV paper compose them. Like KIVI, the prompt itself was attended
// in full precision; the quantized cache serves generation. Size: the eviction's own knob
// keeps tokens and KIVI's bits shrink them; the measured bytes are reported (no ratio request).
#include "compress/kivi_compacted_cache.h"
#include "core/clock.h"
#include "core/error.h"
#include "methods/kivi_options.h"
#include "methods/registry.h"

namespace echokv {
namespace {

class KiviEvictionMethod : public Method {
 public:
  KiviEvictionMethod(std::unique_ptr<Method> eviction, KiviOptions o) : eviction_(std::move(eviction)), o_(o) {}
  std::string size_knob() const override {
    return "eviction (" + eviction_->kind() + "): " + eviction_->size_knob() + "; its kept tokens at " + std::to_string(o_.bits) +
           " bits (KIVI: group " + std::to_string(o_.group) + ", residual " + std::to_string(o_.residual) + ")";
  }
  nlohmann::json options_json() const override {
    return {{"bits", o_.bits}, {"group_size", o_.group}, {"residual", o_.residual},
            {"eviction", eviction_->options_json()}, {"eviction_cache", eviction_->kind()}};
  }
  bool needs_tokenizer() const override { return eviction_->needs_tokenizer(); }
  bool scores_prompt() const override { return true; }
  void prepare(const MethodContext& context) override { eviction_->prepare(context); }
  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan& span, int64_t capacity,
                         int64_t chunk) const override {
    auto out = eviction_->prefill(model, ids, span, capacity, chunk);
    const auto* kept = dynamic_cast<const CompactedCache*>(out.cache.get());
    if (!kept)
      throw Error("kivi_eviction: the eviction method '" + eviction_->kind() +
                  "' does not keep a compacted per-head cache (use an eviction method such as kvzip, snapkv, knorm, adakv)");
    const double t0 = monotonic_seconds();
    out.cache = std::make_unique<KiviCompactedCache>(*kept, model.config(), model.rope(), o_);
    out.scoring_seconds += monotonic_seconds() - t0;
    return out;
  }

 private:
  std::unique_ptr<Method> eviction_;
  KiviOptions o_;
};

}  // namespace

std::unique_ptr<Method> make_kivi_eviction_method(MethodOptions& m) {
  const KiviOptions o = read_kivi_options(m);
  if (!m.has("eviction")) m.fail("needs 'eviction': the token-eviction method entry whose kept tokens KIVI stores");
  auto inner = m.child("eviction");
  auto eviction = make_method(inner, m.label() + " eviction");
  return std::make_unique<KiviEvictionMethod>(std::move(eviction), o);
}

}  // namespace echokv
