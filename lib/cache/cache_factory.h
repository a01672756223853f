// Creates the cache a request asked for, for a loaded model.
#pragma once
#include <memory>

#include "cache/full_cache.h"
#include "model/llama.h"

namespace echokv {

std::unique_ptr<FullCache> make_full_cache(const LlamaModel& model, int64_t capacity, int64_t batch = 1);

}  // namespace echokv
