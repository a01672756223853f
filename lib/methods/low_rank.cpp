// Palu-style low-rank KV cache (Chang et al. 2024): per group of KV heads the K / V
// projections are factored by SVD and each token stores the rank-r latent. Size knob: `ratio`
// = stored / full bytes = r / (group width), exact up to rounding r to a whole rank.
#include "compress/low_rank_cache.h"
#include "methods/method.h"

namespace echokv {
namespace {

class LowRankMethod : public Method {
 public:
  explicit LowRankMethod(LowRankOptions o) : o_(o) {}
  std::string size_knob() const override { return "ratio: bytes kept = rank / group width (exact up to a whole rank)"; }
  std::optional<double> requested_ratio() const override { return o_.ratio; }
  nlohmann::json options_json() const override {
    return {{"ratio", o_.ratio}, {"group_heads", o_.group_heads}, {"chunk_tokens", o_.chunk_tokens}};
  }
  void prepare(const MethodContext& context) override { bases_ = LowRankBases::from_model(*context.model, o_); }
  std::unique_ptr<KVCache> make_cache(const LlamaModel& model, int64_t capacity, int64_t) const override {
    if (!bases_) throw Error("low_rank: prepare() was not called");
    LowRankOptions o = o_;
    o.capacity = std::max<int64_t>(1, capacity);
    return std::make_unique<LowRankCache>(model.config(), model.rope(), bases_, 1, o, model.device(), model.dtype());
  }

 private:
  LowRankOptions o_;
  std::shared_ptr<const LowRankBases> bases_;
};

}  // namespace

std::unique_ptr<Method> make_low_rank_method(MethodOptions& m) {
  LowRankOptions o;
  o.ratio = m.kept_ratio().value_or(o.ratio);
  o.group_heads = m.get<int64_t>("group_heads", o.group_heads);
  o.chunk_tokens = m.get<int64_t>("chunk_tokens", o.chunk_tokens);
  if (!(o.ratio > 0)) m.fail("ratio must be in (0, 1]");
  if (o.group_heads < 0 || o.chunk_tokens <= 0) m.fail("group_heads must be >= 0 and chunk_tokens > 0");
  return std::make_unique<LowRankMethod>(o);
}

}  // namespace echokv
