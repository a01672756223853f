// SnapKV (Li et al. 2024): the prompt's last `obs_window` queries' attention, pooled with an
// odd `kernel`, chooses per KV head the prompt tokens kept (the window always among them);
// the kept pairs are compacted. Size knob: `ratio` = prompt tokens kept per head (window
// included) = stored / full bytes after the prompt, exact up to rounding to a whole token.
#include "compress/snapkv.h"
#include "methods/compacted_prefill.h"

namespace echokv {
namespace {

class SnapKVMethod : public Method {
 public:
  explicit SnapKVMethod(SnapKVOptions o) : o_(o) {}
  std::string size_knob() const override { return "ratio: prompt tokens kept per head, window included (= bytes after the prompt)"; }
  std::optional<double> requested_ratio() const override { return o_.ratio; }
  nlohmann::json options_json() const override { return {{"ratio", o_.ratio}, {"obs_window", o_.window}, {"kernel", o_.kernel}}; }
  bool scores_prompt() const override { return true; }
  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan&, int64_t capacity,
                         int64_t chunk) const override {
    const double scale = model.attention_options().scale;
    return prefill_window_compacted(model, ids, o_.window, capacity, chunk, [&](const FullCache& full, const WindowQueries& wq) {
      return snapkv_keep(full, wq.q, scale, o_);
    });
  }

 private:
  SnapKVOptions o_;
};

}  // namespace

std::unique_ptr<Method> make_snapkv_method(MethodOptions& m) {
  SnapKVOptions o;
  o.ratio = m.kept_ratio().value_or(o.ratio);
  o.window = m.get<int64_t>("obs_window", o.window);
  o.kernel = m.get<int64_t>("kernel", o.kernel);
  if (o.window < 1 || o.kernel < 1 || o.kernel % 2 == 0) m.fail("snapkv needs obs_window >= 1 and an odd kernel");
  return std::make_unique<SnapKVMethod>(o);
}

}  // namespace echokv
