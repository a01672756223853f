// The full cache: every token's keys and values, the reference every method is measured against.
#include "cache/cache_factory.h"
#include "methods/method.h"

namespace echokv {
namespace {

class FullMethod : public Method {
 public:
  std::string size_knob() const override { return "none: stores every token (ratio 1)"; }
  std::optional<double> requested_ratio() const override { return 1.0; }
  nlohmann::json options_json() const override { return nlohmann::json::object(); }
  std::unique_ptr<KVCache> make_cache(const LlamaModel& model, int64_t capacity, int64_t) const override {
    return make_full_cache(model, std::max<int64_t>(1, capacity));
  }
};

}  // namespace

std::unique_ptr<Method> make_full_method(MethodOptions&) { return std::make_unique<FullMethod>(); }

}  // namespace echokv
