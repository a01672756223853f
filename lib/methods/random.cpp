// Random eviction (kvpress's RandomPress): per KV head, a uniformly random subset of the
// context's tokens is kept; the floor every scorer must beat. `seed` (default 0) makes it
// reproducible; each layer draws its own numbers. Query-agnostic one-shot eviction
// (methods/scored_eviction.h: the size knob, the context / question split).
#include "methods/scored_eviction.h"

namespace echokv {

std::unique_ptr<Method> make_random_method(MethodOptions& m) { return make_scorer_method(m, "random"); }

}  // namespace echokv
