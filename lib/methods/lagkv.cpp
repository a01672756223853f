// LagKV (Liang et al. 2025, "LagKV: Lag-Relative Information of the KV Cache Tells Which Tokens
// Are Important"; kvpress's LagKVPress, 4 sinks, lag 128): the prompt cut into 128-token
// partitions after the sinks; each partition's keys and values are min-max normalised by the
// next partition's, scored by the std over channels (softmax, then rank within the partition);
// sinks and the last partitions, which have no successor, are kept first. Attention-free and
// query-agnostic (methods/scored_eviction.h: the size knob, the context / question split).
#include "methods/scored_eviction.h"

namespace echokv {

std::unique_ptr<Method> make_lagkv_method(MethodOptions& m) { return make_scorer_method(m, "lagkv"); }

}  // namespace echokv
