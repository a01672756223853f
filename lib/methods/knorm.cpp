// Knorm (Devoto et al. 2024, "A Simple and Effective L2 Norm-Based Strategy for KV Cache
// Compression"; kvpress's KnormPress): keep, per KV head, the tokens whose keys have the
// smallest L2 norm (a rotation, RoPE leaves the norm unchanged). Query-agnostic: with a
// context / question split the context is compressed before the question is prefilled (as
// kvpress's pipeline does), else the whole prompt. Kept pairs are compacted per head.
// Size knob: `ratio` = stored / full bytes after the prompt; the compressed range keeps
// floor(f x m) tokens per head with f = (ratio x n - (n - m)) / m (m its length, n the
// prompt's), clamped to [0, 1] with a note: exact up to one token per head.
#include <cmath>

#include "cache/cache_factory.h"
#include "compress/compacted_cache.h"
#include "core/clock.h"
#include "methods/method.h"
#include "model/generate.h"

namespace echokv {
namespace {

class KnormMethod : public Method {
 public:
  explicit KnormMethod(double ratio) : ratio_(ratio) {}
  std::string size_knob() const override {
    return "ratio: bytes kept after the prompt (lowest-norm keys of the context per head; prefix and question whole)";
  }
  std::optional<double> requested_ratio() const override { return ratio_; }
  nlohmann::json options_json() const override { return {{"ratio", ratio_}}; }
  bool scores_prompt() const override { return true; }
  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan& span, int64_t capacity,
                         int64_t chunk) const override {
    torch::NoGradGuard no_grad;
    const int64_t n = static_cast<int64_t>(ids.size());
    const bool split = span.context_end > 0;
    const int64_t begin = split ? span.context_begin : 0, end = split ? span.context_end : n;
    PreparedPrompt out;
    const double want = end > begin ? (ratio_ * double(n) - double(n - (end - begin))) / double(end - begin) : 1.0;
    if (want < 0 || want > 1) out.size_note = "the uncompressed prefix and question alone do not fit the request";
    const int64_t keep_tokens = static_cast<int64_t>(std::floor(std::min(1.0, std::max(0.0, want)) * double(end - begin) + 1e-9));
    double t0 = monotonic_seconds();
    auto full = make_full_cache(model, capacity);
    const std::vector<int64_t> head(ids.begin(), ids.begin() + end);
    out.logits = echokv::prefill(model, *full, head, chunk);
    out.prefill_seconds = monotonic_seconds() - t0;
    t0 = monotonic_seconds();
    std::vector<torch::Tensor> keep;  // per layer bool [Hkv, m]
    for (int l = 0; l < model.config().num_hidden_layers; ++l) {
      auto norms = full->keys(l)[0].narrow(1, begin, end - begin).to(torch::kCPU, torch::kFloat32).norm(2, -1);  // [Hkv, m]
      auto mask = torch::zeros(norms.sizes(), torch::kBool);
      if (keep_tokens > 0) mask.scatter_(1, std::get<1>(norms.topk(keep_tokens, 1, /*largest=*/false)), true);
      keep.push_back(mask);
    }
    out.cache = std::make_unique<CompactedCache>(*full, model.rope(), begin, keep);
    out.scoring_seconds = monotonic_seconds() - t0;
    t0 = monotonic_seconds();
    if (end < n) out.logits = echokv::prefill(model, *out.cache, std::vector<int64_t>(ids.begin() + end, ids.end()), chunk);
    out.prefill_seconds += monotonic_seconds() - t0;
    return out;
  }

 private:
  double ratio_;
};

}  // namespace

std::unique_ptr<Method> make_knorm_method(MethodOptions& m) {
  return std::make_unique<KnormMethod>(m.kept_ratio().value_or(0.5));
}

}  // namespace echokv
