// ObservedAttention (kvpress's ObservedAttentionPress; the prefill form of H2O, Zhang et al.
// 2023, "H2O: Heavy-Hitter Oracle"): a context token's score is the attention it receives from
// every prompt query up to the end of the context, divided by the number of queries that see
// it, averaged over its GQA group; per KV head the top tokens are kept. The attention is
// recomputed in float32 chunk by chunk during the prefill (no [n, n] matrix is held).
// Query-agnostic one-shot eviction (methods/scored_eviction.h).
#include "methods/scored_eviction.h"

namespace echokv {

std::unique_ptr<Method> make_observed_attention_method(MethodOptions& m) { return make_scorer_method(m, "observed_attention"); }

}  // namespace echokv
