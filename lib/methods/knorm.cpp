// Knorm (Devoto et al. 2024, "A Simple and Effective L2 Norm-Based Strategy for KV Cache
// Compression"; kvpress's KnormPress): keep, per KV head, the context tokens whose keys have the
// smallest L2 norm (RoPE, a rotation, leaves the norm unchanged). Query-agnostic one-shot
// eviction (methods/scored_eviction.h: the size knob, the context / question split).
#include "methods/scored_eviction.h"

namespace echokv {

std::unique_ptr<Method> make_knorm_method(MethodOptions& m) { return make_scorer_method(m, "knorm"); }

}  // namespace echokv
