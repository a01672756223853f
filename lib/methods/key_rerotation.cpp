// KeyRerotation (kvpress's KeyRerotationPress; the re-rotation of HF's SinkCache and FINCH,
// Corallo & Papotti 2024): any context scorer (`scorer:`, default snapkv) keeps the same number
// of context tokens per head; the kept keys are then re-rotated to contiguous positions and the
// question and answer continue right after them (kvpress's pipeline: context_length = the
// compressed length), as if the evicted tokens had never been there.
// methods/scored_eviction.h: the size knob and the context / question split.
#include "methods/scored_eviction.h"

namespace echokv {

std::unique_ptr<Method> make_key_rerotation_method(MethodOptions& m) {
  ScoredEvictionOptions o;
  o.scorer = &read_token_scorer(m, "snapkv");
  o.rerotate = true;
  return make_scored_eviction_method(m, o);
}

}  // namespace echokv
