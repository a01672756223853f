// KVzip (Kim et al., arXiv 2505.23416): query-agnostic eviction of context KV pairs by how much
// each pair serves the model's reconstruction of the context (official code semantics:
// lib/compress/kvzip_scoring.h). Levels: pair, uniform (pair-uniform: the same ratio per head),
// head (whole heads from calibrated head scores). The prefix and the question stay whole.
// Size knob: `ratio` = stored / full bytes after the prompt; per prompt the fraction of context
// pairs kept is (ratio x n - (n - context)) / context, clamped to [0, 1] (the record says
// when), then the official kept count (strictly above the k-th score) rounds it down.
// `context_ratio` = the official knob, the fraction of context pairs kept.
#include "compress/kvzip_prefill.h"
#include "core/error.h"
#include "core/files.h"
#include "eval/prompt_split.h"
#include "methods/method.h"
#include "tokenizer/tokenizer.h"

namespace echokv {
namespace {

class KvzipMethod : public Method {
 public:
  KvzipMethod(KvzipOptions o, std::optional<double> bytes_ratio) : o_(std::move(o)), bytes_ratio_(bytes_ratio) {}
  std::string size_knob() const override {
    return bytes_ratio_ ? "ratio: bytes kept after the prompt (context pairs kept per prompt; prefix and question whole)"
                        : "context_ratio: the fraction of context pairs kept (KVzip's own ratio)";
  }
  std::optional<double> requested_ratio() const override { return bytes_ratio_; }
  nlohmann::json options_json() const override {
    nlohmann::json j = {{"level", o_.level}, {"storage", o_.storage}, {"score_chunk", o_.chunk_tokens}};
    if (bytes_ratio_) j["ratio"] = *bytes_ratio_;
    else j["context_ratio"] = o_.ratio;
    if (o_.level == "head") j["calibration"] = o_.calibration;
    return j;
  }
  std::string report_note() const override {
    if (o_.level != "head") return "";
    std::string files;
    for (const auto& f : o_.calibration) files += (files.empty() ? "`" : ", `") + f + "`";
    return "(KVzip head level): head scores calibrated on " + files + " (first " + std::to_string(o_.calibration_tokens) +
           " tokens each; the official calibrates on one long SCBench qa_eng sample, not available here), then the heads "
           "above the int(heads x ratio)-th score are kept whole.";
  }
  bool needs_tokenizer() const override { return true; }
  bool scores_prompt() const override { return true; }

  void prepare(const MethodContext& context) override {
    if (!context.tokenizer) throw Error("KVzip needs the model's tokenizer for its repeat prompts");
    const Tokenizer& tokenizer = *context.tokenizer;
    auto prompts = kvzip_prompts(tokenizer, kvzip_repeat_postfix_ids(tokenizer, context.chat));
    prompts.chunk_tokens = o_.chunk_tokens;
    scoring_.prompts = std::make_shared<KvzipPrompts>(prompts);
    scoring_.memo = context.shared->slot<KvzipScoreMemo>("kvzip_pair_scores");
    if (o_.level != "head") return;
    std::vector<std::vector<int64_t>> contexts;
    for (const auto& path : o_.calibration) {
      auto ids = tokenizer.encode(read_text_file(path), false);
      if (static_cast<int64_t>(ids.size()) > o_.calibration_tokens) ids.resize(static_cast<size_t>(o_.calibration_tokens));
      if (ids.empty()) fail(path, "KVzip calibration text is empty");
      contexts.push_back(std::move(ids));
    }
    const auto header = kvzip_system_prefix_ids(tokenizer, context.chat);  // the official system prompt, kept whole
    head_scores_ = kvzip_calibrate_heads(*context.model, prompts, header, contexts, context.prefill_chunk);
    if (context.artifacts_dir.empty()) return;
    nlohmann::json hs = nlohmann::json::array();
    for (const auto& t : head_scores_) hs.push_back(std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel()));
    write_text_atomic(join_path(context.artifacts_dir, "head_scores.json"), hs.dump(1) + "\n");
  }

  PreparedPrompt prefill(LlamaModel& model, const std::vector<int64_t>& ids, const PromptSpan& span, int64_t capacity,
                         int64_t chunk) const override {
    double context_ratio = o_.ratio;
    std::string note;
    if (bytes_ratio_ && span.context_end >= 0) {
      const double n = static_cast<double>(ids.size());
      const double c = static_cast<double>(span.context_end - span.context_begin);
      const double want = c > 0 ? (*bytes_ratio_ * n - (n - c)) / c : 1.0;
      context_ratio = std::min(1.0, std::max(0.0, want));
      if (want < 0) note = "prefix + question alone are " + std::to_string((n - c) / n) + " of the prompt";
      if (want > 1) note = "keeping every context pair";
    }
    auto out = kvzip_prefill(model, o_, context_ratio, scoring_, head_scores_, ids, span, capacity, chunk);
    out.size_note = note;
    return out;
  }

 private:
  KvzipOptions o_;
  std::optional<double> bytes_ratio_;
  KvzipScoring scoring_;
  std::vector<torch::Tensor> head_scores_;
};

}  // namespace

std::unique_ptr<Method> make_kvzip_method(MethodOptions& m) {
  KvzipOptions o;
  const auto bytes_ratio = m.kept_ratio();
  if (bytes_ratio && m.has("context_ratio")) m.fail("give ratio (bytes kept) or context_ratio (context pairs kept), not both");
  o.ratio = m.get<double>("context_ratio", o.ratio);
  o.level = m.get<std::string>("level", o.level);
  o.storage = m.get<std::string>("storage", o.storage);
  o.chunk_tokens = m.get<int64_t>("score_chunk", o.chunk_tokens);
  o.calibration = m.path_list("calibration");
  o.calibration_tokens = m.get<int64_t>("calibration_tokens", o.calibration_tokens);
  if (!(o.ratio >= 0 && o.ratio <= 1)) m.fail("kvzip context_ratio must be in [0, 1]");
  if (o.level != "pair" && o.level != "uniform" && o.level != "head") m.fail("kvzip level must be pair, uniform or head");
  if (o.storage != "compact" && o.storage != "retain") m.fail("kvzip storage must be compact or retain");
  if (o.level == "head" && o.calibration.empty()) m.fail("kvzip level head needs calibration (text files)");
  if (o.chunk_tokens <= 0 || o.calibration_tokens <= 0) m.fail("score_chunk and calibration_tokens must be positive");
  return std::make_unique<KvzipMethod>(std::move(o), bytes_ratio);
}

}  // namespace echokv
