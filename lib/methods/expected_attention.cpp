// ExpectedAttention (Devoto et al. 2025; kvpress's ExpectedAttentionPress with its defaults:
// 512 future positions, 4 sinks, covariance and value norms on): the attention future queries
// are expected to pay, estimated from the mean and covariance of the prompt's own pre-RoPE
// queries under the averaged RoPE rotation, times ||v||; per KV head the top context tokens
// are kept (compress/expected_attention.h; methods/scored_eviction.h: the size knob, the
// context / question split). Query statistics are accumulated during the chunked prefill.
#include "methods/scored_eviction.h"

namespace echokv {

std::unique_ptr<Method> make_expected_attention_method(MethodOptions& m) { return make_scorer_method(m, "expected_attention"); }

}  // namespace echokv
