// DuoAttention on the fly (Xiao et al. 2024; kvpress's DuoAttentionPress with
// on_the_fly_scoring=True: compress/duo_attention.h): head scores from calibration texts
// (`calibration`: text files, their first `calibration_tokens` tokens each; kvpress samples 50
// BookSum chapters, not available here), the lowest-scoring (layer, KV head) pairs become
// streaming heads that keep only the first `sink_tokens` (128) and last `recent_tokens` (256)
// tokens of the prompt up to the context's end; retrieval heads keep everything. Each head
// stores only what it keeps (CompactedCache), unlike kvpress's masks.
// Size: `head_compression_ratio` = the fraction of heads that stream (kvpress's knob), or
// `ratio` = bytes after the prompt: per prompt round((1 - ratio) x n x heads / dropped) heads
// stream, `dropped` being the tokens one streaming head drops (exact up to one head's share).
// The question and generated tokens are kept by every head.
#include <cmath>

#include "cache/cache_factory.h"
#include "compress/compacted_cache.h"
#include "compress/duo_attention.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/files.h"
#include "methods/compacted_prefill.h"
#include "model/generate.h"
#include "tokenizer/tokenizer.h"

namespace echokv {
namespace {

struct DuoOptions {
  std::optional<double> bytes_ratio;
  double head_ratio = 0.0;
  int64_t sink = 128, recent = 256, pattern = 500, calibration_tokens = 4096;
  std::vector<std::string> calibration;
};

class DuoAttentionMethod : public Method {
 public:
  explicit DuoAttentionMethod(DuoOptions o) : o_(std::move(o)) {}
  std::string size_knob() const override {
    return o_.bytes_ratio ? "ratio: bytes kept after the prompt (streaming heads chosen per prompt; exact up to one head)"
                          : "head_compression_ratio: the fraction of (layer, KV head) pairs that stream";
  }
  std::optional<double> requested_ratio() const override { return o_.bytes_ratio; }
  nlohmann::json options_json() const override {
    nlohmann::json j = {{"sink_tokens", o_.sink}, {"recent_tokens", o_.recent}, {"pattern_length", o_.pattern},
                        {"calibration", o_.calibration}, {"calibration_tokens", o_.calibration_tokens}};
    if (o_.bytes_ratio) j["ratio"] = *o_.bytes_ratio;
    else j["head_compression_ratio"] = o_.head_ratio;
    return j;
  }
  std::string report_note() const override {
    return "(DuoAttention): head scores computed on the fly (kvpress's on_the_fly_scoring) from " +
           std::to_string(o_.calibration.size()) + " calibration text(s), not the trained patterns of the paper.";
  }
  bool needs_tokenizer() const override { return true; }
  bool scores_prompt() const override { return true; }

  void prepare(const MethodContext& context) override {
    if (!context.tokenizer) throw Error("DuoAttention needs the model's tokenizer for its calibration texts");
    std::vector<std::vector<int64_t>> samples;
    for (const auto& path : o_.calibration) {
      auto ids = context.tokenizer->encode(read_text_file(path), false);
      if (static_cast<int64_t>(ids.size()) > o_.calibration_tokens) ids.resize(static_cast<size_t>(o_.calibration_tokens));
      if (ids.empty()) fail(path, "DuoAttention calibration text is empty");
      samples.push_back(std::move(ids));
    }
    scores_ = duo_attention_head_scores(*context.model, samples, o_.pattern, context.prefill_chunk);
    if (context.artifacts_dir.empty()) return;
    std::vector<float> flat(scores_.data_ptr<float>(), scores_.data_ptr<float>() + scores_.numel());
    write_text_atomic(join_path(context.artifacts_dir, "duo_head_scores.json"),
                      nlohmann::json{{"shape", scores_.sizes().vec()}, {"scores", flat}}.dump(1) + "\n");
  }

  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan& span, int64_t capacity,
                         int64_t chunk) const override {
    if (!scores_.defined()) throw Error("DuoAttention: prepare() was not called");
    torch::NoGradGuard no_grad;
    const int64_t n = static_cast<int64_t>(ids.size());
    const bool split = span.context_end > 0;
    const int64_t begin = split ? span.context_begin : 0, end = split ? span.context_end : n;
    // A streaming head drops the range's tokens in [sink, end - recent) (positions of the prompt).
    const int64_t drop_from = std::max(begin, o_.sink), drop_to = std::max(drop_from, end - o_.recent);
    const int64_t dropped = drop_to - drop_from, heads = scores_.numel();
    PreparedPrompt out;
    int64_t streaming = std::llround(o_.head_ratio * double(heads));  // kvpress: round(heads x ratio)
    if (o_.bytes_ratio) {
      const double want = dropped > 0 ? (1.0 - *o_.bytes_ratio) * double(n) * double(heads) / double(dropped) : 0.0;
      streaming = std::llround(std::min(double(heads), std::max(0.0, want)));
      if (want > double(heads)) out.size_note = "every head streams and the request is still not met";
    }
    double t0 = monotonic_seconds();
    auto full = make_full_cache(model, capacity);
    out.logits = echokv::prefill(model, *full, std::vector<int64_t>(ids.begin(), ids.begin() + end), chunk);
    out.prefill_seconds = monotonic_seconds() - t0;
    t0 = monotonic_seconds();
    const auto stream = duo_streaming_heads(scores_, streaming);  // [layers, Hkv]
    std::vector<torch::Tensor> masks;
    for (int l = 0; l < model.config().num_hidden_layers; ++l) {
      auto m = torch::ones({model.config().num_key_value_heads, end - begin}, torch::kBool);
      for (int64_t h = 0; h < m.size(0); ++h)
        if (stream[l][h].item<bool>() && dropped > 0) m[h].narrow(0, drop_from - begin, dropped).fill_(false);
      masks.push_back(m);
    }
    out.cache = std::make_unique<CompactedCache>(*full, model.rope(), begin, masks);
    out.scoring_seconds = monotonic_seconds() - t0;
    prefill_after_context(model, out, ids, end, chunk);
    return out;
  }

 private:
  DuoOptions o_;
  torch::Tensor scores_;  // [layers, Hkv]
};

}  // namespace

std::unique_ptr<Method> make_duo_attention_method(MethodOptions& m) {
  DuoOptions o;
  o.bytes_ratio = m.kept_ratio();
  if (o.bytes_ratio && m.has("head_compression_ratio")) m.fail("give ratio (bytes kept) or head_compression_ratio, not both");
  o.head_ratio = m.get<double>("head_compression_ratio", o.head_ratio);
  o.sink = m.get<int64_t>("sink_tokens", o.sink);
  o.recent = m.get<int64_t>("recent_tokens", o.recent);
  o.pattern = m.get<int64_t>("pattern_length", o.pattern);
  o.calibration = m.path_list("calibration");
  o.calibration_tokens = m.get<int64_t>("calibration_tokens", o.calibration_tokens);
  if (o.calibration.empty()) m.fail("duo_attention needs calibration (text files) for its head scores");
  if (!(o.head_ratio >= 0 && o.head_ratio <= 1)) m.fail("head_compression_ratio must be in [0, 1]");
  if (o.sink < 0 || o.recent < 0) m.fail("sink_tokens and recent_tokens must be >= 0");
  if (o.pattern < 1 || o.calibration_tokens < 1) m.fail("pattern_length and calibration_tokens must be >= 1");
  return std::make_unique<DuoAttentionMethod>(o);
}

}  // namespace echokv
