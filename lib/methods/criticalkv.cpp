// CriticalKV (Feng et al. 2025, "Identify Critical KV Cache in LLM Inference from an Output
// Perturbation Perspective"; kvpress's CriticalKVPress / CriticalAdaKVPress): any context
// scorer (`scorer:`, default snapkv) rescored in two stages: each head's top
// floor(first_stage_ratio x budget) tokens by the scorer alone (default 0.5), the rest by
// (score + epsilon) x ||W_o v||_1 averaged over the GQA group (epsilon 1e-4).
// `head_adaptive: true` then selects with AdaKV's budgets (alpha_safeguard, default 0.2), the
// CriticalAdaKV form; kvpress applies its first stage inside AdaKV's selection, here the
// rescored scores go through the same AdaKV rule. methods/scored_eviction.h.
#include "methods/scored_eviction.h"

namespace echokv {

std::unique_ptr<Method> make_criticalkv_method(MethodOptions& m) {
  ScoredEvictionOptions o;
  o.scorer = &read_token_scorer(m, "snapkv");
  o.critical = true;
  o.critical_epsilon = m.get<double>("epsilon", o.critical_epsilon);
  o.first_stage_ratio = m.get<double>("first_stage_ratio", o.first_stage_ratio);
  if (!(o.critical_epsilon >= 0)) m.fail("epsilon must be >= 0");
  if (!(o.first_stage_ratio >= 0 && o.first_stage_ratio <= 1)) m.fail("first_stage_ratio must be in [0, 1]");
  if (m.get<bool>("head_adaptive", false)) {
    o.budget = EvictionBudget::kHeadAdaptive;
    o.alpha_safeguard = m.get<double>("alpha_safeguard", o.alpha_safeguard);
    if (!(o.alpha_safeguard >= 0 && o.alpha_safeguard <= 1)) m.fail("alpha_safeguard must be in [0, 1]");
  }
  return make_scored_eviction_method(m, o);
}

}  // namespace echokv
