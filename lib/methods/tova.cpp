// TOVA (Oren et al. 2024, "Transformers are Multi-State RNNs"; kvpress's TOVAPress): the
// context's last token's attention, averaged over all query heads, scores every earlier
// context token, and each KV head keeps the same top tokens (the last token always). TOVA
// itself evicts one token per decode step; this is kvpress's one-shot form over the context
// (methods/scored_eviction.h: the size knob, the context / question split).
#include "methods/scored_eviction.h"

namespace echokv {

std::unique_ptr<Method> make_tova_method(MethodOptions& m) { return make_scorer_method(m, "tova"); }

}  // namespace echokv
