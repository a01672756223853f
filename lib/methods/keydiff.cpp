// KeyDiff (Park et al. 2025, "KeyDiff: Key Similarity-Based KV Cache Eviction for Long-Context
// LLM Inference in Resource-Constrained Environments"; kvpress's KeyDiffPress): per KV head,
// the context tokens whose keys are least similar (cosine) to the mean unit key are kept:
// distinctive keys survive. One shot over the context, as kvpress (the paper's block-wise
// iteration is kvpress's BlockPress). Query-agnostic (methods/scored_eviction.h).
#include "methods/scored_eviction.h"

namespace echokv {

std::unique_ptr<Method> make_keydiff_method(MethodOptions& m) { return make_scorer_method(m, "keydiff"); }

}  // namespace echokv
