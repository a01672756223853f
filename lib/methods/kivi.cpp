// KIVI (Liu et al. 2024, "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache"):
// keys quantized per channel in groups of `group_size` tokens, values per token in groups of
// `group_size` channels, `bits` 2 or 4, the recent `residual` tokens in full precision (the
// official cache policy; compress/kivi_cache.h). No token is dropped: the size follows from
// bits, group size and residual, so there is no `ratio`; bytes() counts packed codes, scales,
// minima (the model dtype) and the full-precision tails.
#include "compress/kivi_cache.h"
#include "methods/kivi_options.h"

namespace echokv {
namespace {

class KiviMethod : public Method {
 public:
  explicit KiviMethod(KiviOptions o) : o_(o) {}
  std::string size_knob() const override {
    return "bits, group_size, residual: every token kept, keys per channel and values per token at " +
           std::to_string(o_.bits) + " bits (scales and minima in the model dtype; recent tokens in full precision)";
  }
  nlohmann::json options_json() const override {
    return {{"bits", o_.bits}, {"group_size", o_.group}, {"residual", o_.residual}};
  }
  std::unique_ptr<KVCache> make_cache(const LlamaModel& model, int64_t, int64_t) const override {
    return std::make_unique<KiviCache>(model.config(), model.rope(), 1, o_, model.device(), model.dtype());
  }

 private:
  KiviOptions o_;
};

}  // namespace

KiviOptions read_kivi_options(MethodOptions& m) {
  KiviOptions o;
  o.bits = m.get<int>("bits", o.bits);
  o.group = m.get<int64_t>("group_size", o.group);
  o.residual = m.get<int64_t>("residual", o.residual);
  if (o.bits != 2 && o.bits != 4 && o.bits != 8) m.fail("bits must be 2 or 4 (KIVI), or 8");
  if (o.group < 4 || o.group % 4 != 0) m.fail("group_size must be a positive multiple of 4 (KIVI: 32, 64 or 128)");
  if (o.residual < o.group || o.residual % o.group != 0) m.fail("residual must be a positive multiple of group_size");
  return o;
}

std::unique_ptr<Method> make_kivi_method(MethodOptions& m) { return std::make_unique<KiviMethod>(read_kivi_options(m)); }

}  // namespace echokv
