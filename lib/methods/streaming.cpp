// StreamingLLM (Xiao et al. 2023): the first `sink_tokens` tokens (attention sinks) and a
// window of recent tokens. Size knob: `ratio` = stored / full bytes at the end of the prompt
// (window = round(ratio x prompt) - sink, exact up to a token), or a fixed `window`.
#include <cmath>

#include "compress/streaming_cache.h"
#include "methods/method.h"

namespace echokv {
namespace {

class StreamingMethod : public Method {
 public:
  explicit StreamingMethod(StreamingOptions o) : o_(o) {}
  std::string size_knob() const override {
    return o_.ratio > 0 ? "ratio: bytes kept at the end of the prompt (sink + window tokens; exact up to one token)"
                        : "window: a fixed number of recent tokens after the sinks";
  }
  std::optional<double> requested_ratio() const override {
    return o_.ratio > 0 ? std::optional<double>(o_.ratio) : std::nullopt;
  }
  nlohmann::json options_json() const override {
    return {{"sink_tokens", o_.sink_tokens}, {"window", o_.window_tokens}, {"ratio", o_.ratio}};
  }
  std::unique_ptr<KVCache> make_cache(const LlamaModel& model, int64_t capacity, int64_t prompt_tokens) const override {
    const int64_t prompt = prompt_tokens >= 0 ? prompt_tokens : capacity;
    const int64_t window = o_.ratio > 0
                               ? std::max<int64_t>(0, std::llround(o_.ratio * static_cast<double>(prompt)) - o_.sink_tokens)
                               : o_.window_tokens;
    return std::make_unique<StreamingCache>(model.config(), model.rope(), 1, o_.sink_tokens, window, model.device(),
                                            model.dtype());
  }

 private:
  StreamingOptions o_;
};

}  // namespace

std::unique_ptr<Method> make_streaming_method(MethodOptions& m) {
  StreamingOptions o;
  o.sink_tokens = m.get<int64_t>("sink_tokens", o.sink_tokens);
  const bool has_window = m.has("window");
  o.window_tokens = m.get<int64_t>("window", o.window_tokens);
  if (const auto r = m.kept_ratio()) {
    if (has_window) m.fail("give ratio or window, not both");
    if (!(*r > 0)) m.fail("ratio must be > 0 (the sinks alone: set window: 0)");
    o.ratio = *r;
  }
  if (o.sink_tokens < 0 || o.window_tokens < 0) m.fail("sink_tokens and window must be >= 0");
  if (o.sink_tokens + o.window_tokens == 0 && o.ratio <= 0) m.fail("sink_tokens + window must keep at least one token");
  return std::make_unique<StreamingMethod>(o);
}

}  // namespace echokv
