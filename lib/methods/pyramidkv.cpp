// PyramidKV (Cai et al. 2024, "PyramidKV: Dynamic KV Cache Compression based on Pyramidal
// Information Funneling"; kvpress's PyramidKVPress, budgets from KVCache-Factory): SnapKV's
// scores (the prompt's last `obs_window` queries vote, pooled with `kernel`), but layer l keeps
// a budget that falls linearly with depth, steepness `beta` (compress/token_budgets.h); the
// layers' budgets average ratio x prompt, so the stored bytes meet `ratio` up to rounding.
// Where the pyramid does not fit (short prompts: min budget below the window) every layer
// gets the uniform budget, as kvpress does; the record's size_note says so. kvpress's
// defaults: obs_window 64, kernel 5, beta 20.
#include "compress/snapkv.h"
#include "compress/token_budgets.h"
#include "methods/compacted_prefill.h"

namespace echokv {
namespace {

struct PyramidOptions {
  double ratio = 0.5;
  int64_t window = 64, kernel = 5;
  double beta = 20;
};

class PyramidKVMethod : public Method {
 public:
  explicit PyramidKVMethod(PyramidOptions o) : o_(o) {}
  std::string size_knob() const override {
    return "ratio: prompt tokens kept per head averaged over layers, window included (= bytes after the prompt)";
  }
  std::optional<double> requested_ratio() const override { return o_.ratio; }
  nlohmann::json options_json() const override {
    return {{"ratio", o_.ratio}, {"obs_window", o_.window}, {"kernel", o_.kernel}, {"beta", o_.beta}};
  }
  bool scores_prompt() const override { return true; }
  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan&, int64_t capacity,
                         int64_t chunk) const override {
    const int64_t n = static_cast<int64_t>(ids.size());
    bool uniform = false;
    auto out = prefill_window_compacted(model, ids, o_.window, capacity, chunk, [&](const FullCache& full, const WindowQueries& wq) {
      const auto budgets = pyramid_layer_budgets(model.config().num_hidden_layers, n, o_.ratio, wq.window, o_.beta);
      uniform = budgets.front() == budgets.back();
      return snapkv_keep_per_layer(full, wq.q, model.attention_options().scale, o_.kernel, budgets);
    });
    if (uniform) out.size_note = "PyramidKV: the pyramid does not fit this prompt; uniform budgets";
    return out;
  }

 private:
  PyramidOptions o_;
};

}  // namespace

std::unique_ptr<Method> make_pyramidkv_method(MethodOptions& m) {
  PyramidOptions o;
  o.ratio = m.kept_ratio().value_or(o.ratio);
  o.window = m.get<int64_t>("obs_window", o.window);
  o.kernel = m.get<int64_t>("kernel", o.kernel);
  o.beta = m.get<double>("beta", o.beta);
  if (o.window < 1 || o.kernel < 1 || o.kernel % 2 == 0) m.fail("pyramidkv needs obs_window >= 1 and an odd kernel");
  if (!(o.beta >= 1)) m.fail("beta must be >= 1");
  return std::make_unique<PyramidKVMethod>(o);
}

}  // namespace echokv
