// Decode-time compression (kvpress's DecodingPress): during generation, every
// `compression_interval` steps (default 512) each layer is cut back to `target_size` tokens
// per head (default 2048) by a scorer of stored states (`scorer:` knorm, keydiff, lagkv or
// random; default knorm, as kvpress's decoding_knorm), the prompt included
// (compress/decoding_cache.h). The prompt itself is not compressed: long generations are what
// this is for. No `ratio`: the target size is the knob and bytes() reports what is held.
#include "compress/decoding_cache.h"
#include "methods/method.h"
#include "methods/scored_eviction.h"

namespace echokv {
namespace {

class DecodingMethod : public Method {
 public:
  explicit DecodingMethod(DecodingCompressionOptions o) : o_(o) {}
  std::string size_knob() const override {
    return "target_size: tokens per head kept each compression_interval decoding steps (" + o_.scorer->name +
           " scores; the prompt is stored whole until generation compresses it)";
  }
  nlohmann::json options_json() const override {
    nlohmann::json j = {{"scorer", o_.scorer->name}, {"compression_interval", o_.interval}, {"target_size", o_.target}};
    if (o_.scorer->name == "random") j["seed"] = o_.seed;
    return j;
  }
  std::unique_ptr<KVCache> make_cache(const LlamaModel& model, int64_t, int64_t) const override {
    return std::make_unique<DecodingCompressionCache>(model, o_);
  }

 private:
  DecodingCompressionOptions o_;
};

}  // namespace

std::unique_ptr<Method> make_decoding_method(MethodOptions& m) {
  DecodingCompressionOptions o;
  o.scorer = &read_token_scorer(m, "knorm");
  if (!o.scorer->from_states) m.fail("decoding needs a scorer of stored keys and values (knorm, keydiff, lagkv or random)");
  o.interval = m.get<int64_t>("compression_interval", o.interval);
  o.target = m.get<int64_t>("target_size", o.target);
  if (o.interval < 1 || o.target < 1) m.fail("compression_interval and target_size must be >= 1");
  if (o.scorer->name == "random") {
    const auto seed = m.get<int64_t>("seed", 0);
    if (seed < 0) m.fail("seed must be >= 0");
    o.seed = static_cast<uint64_t>(seed);
  }
  return std::make_unique<DecodingMethod>(o);
}

}  // namespace echokv
