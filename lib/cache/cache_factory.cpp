#include "cache/cache_factory.h"

namespace echokv {

std::unique_ptr<FullCache> make_full_cache(const LlamaModel& model, int64_t capacity, int64_t batch) {
  return std::make_unique<FullCache>(model.config(), model.rope(), batch, capacity, model.device(), model.dtype());
}

}  // namespace echokv
