// AdaKV (Feng et al. 2024, "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget
// Allocation"; kvpress's AdaKVPress): any context scorer (`scorer:`, default snapkv, the
// paper's base), but one top-k across all KV heads of a layer, after each head's safeguard of
// floor(alpha_safeguard x budget) tokens (default 0.2): heads keep different numbers of tokens.
// kvpress masks the evicted keys and saves no memory; here each head stores only what it
// keeps (CompactedCache's per-head lists), and bytes() counts it. methods/scored_eviction.h.
#include "methods/scored_eviction.h"

namespace echokv {

std::unique_ptr<Method> make_adakv_method(MethodOptions& m) {
  ScoredEvictionOptions o;
  o.scorer = &read_token_scorer(m, "snapkv");
  o.budget = EvictionBudget::kHeadAdaptive;
  o.alpha_safeguard = m.get<double>("alpha_safeguard", o.alpha_safeguard);
  if (!(o.alpha_safeguard >= 0 && o.alpha_safeguard <= 1)) m.fail("alpha_safeguard must be in [0, 1]");
  return make_scored_eviction_method(m, o);
}

}  // namespace echokv
