#include "methods/echo_parts.h"

#include <algorithm>

#include "core/error.h"

namespace echokv {

EchoParts EchoParts::parse(MethodOptions& m) {
  EchoParts p;
  p.echo_dir = m.get_path("echo_dir", "");
  if (p.echo_dir.empty()) m.fail("needs echo_dir (on the command line: needs --echo DIR), a folder from echokv-train echo");
  p.cache.sink_tokens = m.get<int64_t>("sink_tokens", p.cache.sink_tokens);
  p.cache.recent_tokens = m.get<int64_t>("recent_tokens", p.cache.recent_tokens);
  p.cache.chunk_tokens = m.get<int64_t>("chunk_tokens", p.cache.chunk_tokens);
  if (p.cache.sink_tokens < 0 || p.cache.recent_tokens < 0 || p.cache.chunk_tokens <= 0)
    m.fail("sink_tokens and recent_tokens must be >= 0 and chunk_tokens > 0");
  return p;
}

nlohmann::json EchoParts::options_json() const {
  return {{"echo_dir", echo_dir},
          {"sink_tokens", cache.sink_tokens},
          {"recent_tokens", cache.recent_tokens},
          {"chunk_tokens", cache.chunk_tokens}};
}

void EchoParts::load(const MethodContext& context) {
  auto r = std::make_shared<Reconstructor>(Reconstructor::load(echo_dir, context.model_dir));
  r->to(context.model->device(), context.model->dtype());
  reconstructor = r;
}

std::unique_ptr<EchoCache> EchoParts::make_cache(const LlamaModel& model, int64_t capacity) const {
  if (!reconstructor) throw Error(echo_dir + ": the reconstructors were not loaded (prepare() not called)");
  EchoCacheOptions o = cache;
  o.capacity = std::max<int64_t>(1, capacity);
  return std::make_unique<EchoCache>(model.config(), model.rope(), reconstructor, 1, o, model.device(), model.dtype());
}

std::vector<torch::Tensor> echo_global_keys(EchoCache& echo) {
  std::vector<torch::Tensor> keys;
  for (int l = 0; l < echo.reconstructor().plan().shape.num_layers; ++l) keys.push_back(echo.global_features(l, KVKind::Key));
  return keys;
}

std::unique_ptr<PrunedKeyCache> prune_echo_keys(std::unique_ptr<EchoCache> echo, std::vector<torch::Tensor> channels,
                                                int64_t upto) {
  const auto& shape = echo->reconstructor().plan().shape;
  const int64_t heads = shape.num_kv_heads, D = shape.head_dim;
  if (static_cast<int64_t>(channels.size()) != shape.num_layers || upto < 0 || upto > echo->next_position())
    throw Error("EchoKV-Hybrid: one key channel mask per layer and a pruned range inside the cache");
  for (int l = 0; l < shape.num_layers; ++l) {
    if (echo->reconstructor().compressed(l, KVKind::Key))
      throw Error("EchoKV-Hybrid: key channel pruning needs every key layer global (a values-only plan); key layer " +
                  std::to_string(l) + " is compressed");
    auto m = channels[static_cast<size_t>(l)].to(torch::kCPU, torch::kBool);
    if (m.sizes() != torch::IntArrayRef({heads, D}) || !m.narrow(1, 0, D / 2).equal(m.narrow(1, D / 2, D / 2)))
      throw Error("EchoKV-Hybrid: key channel mask must be [Hkv, D] and keep RoPE pairs together");
  }
  // Global key stores hold [B, n, Hkv*D] before RoPE; pruning sees them as [B, Hkv, n, D].
  auto keys = [heads, D](KVCache& base, int layer) {
    auto f = static_cast<EchoCache&>(base).global_features(layer, KVKind::Key);
    return f.view({f.size(0), f.size(1), heads, D}).permute({0, 2, 1, 3});
  };
  return std::make_unique<PrunedKeyCache>(std::move(echo), keys, upto, std::move(channels));
}

namespace {

// The bytes evicting `keep` frees from an EchoCache: for each store, the tokens no reader keeps.
int64_t echo_evicted_bytes(const KVCache& base, int64_t begin, const std::vector<torch::Tensor>& keep) {
  const auto& echo = static_cast<const EchoCache&>(base);
  const Reconstructor& r = echo.reconstructor();
  const int layers = static_cast<int>(r.plan().shape.num_layers);
  if (static_cast<int>(keep.size()) != layers) throw Error("EchoKV x KVzip: one token mask per layer");
  auto kept = [&](int layer) { return keep[static_cast<size_t>(layer)].reshape({-1}).to(torch::kCPU, torch::kBool); };
  const int64_t n = keep.empty() ? 0 : keep[0].numel();
  int64_t freed = 0;
  for (int l = 0; l < layers; ++l)
    for (KVKind kind : {KVKind::Key, KVKind::Value}) {
      auto needed = kept(l);  // readers of this store keep the token: the layer, and every layer rebuilt from it
      if (!r.compressed(l, kind))
        for (int m = 0; m < layers; ++m) {
          const auto& sources = r.plan().at(m, kind).sources;
          if (m != l && r.compressed(m, kind) && std::find(sources.begin(), sources.end(), l) != sources.end())
            needed = needed | kept(m);
        }
      freed += echo.stored_bytes(l, kind, begin, n).masked_select(needed.logical_not()).sum().item<int64_t>();
    }
  return freed;
}

}  // namespace

std::unique_ptr<TokenMaskCache> evict_echo_tokens(std::unique_ptr<EchoCache> echo) {
  return std::make_unique<TokenMaskCache>(std::move(echo), echo_evicted_bytes);
}

}  // namespace echokv
