#include "echo/echo_cache.h"

#include "cache/growable.h"

#include <algorithm>
#include <limits>

#include "core/clock.h"
#include "core/error.h"

namespace echokv {

namespace {
// [B, Hkv, T, D] -> [B, T, Hkv*D] and back.
torch::Tensor to_features(const torch::Tensor& x) {
  return x.permute({0, 2, 1, 3}).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}
torch::Tensor to_heads(const torch::Tensor& f, int64_t heads) {
  return f.view({f.size(0), f.size(1), heads, f.size(2) / heads}).permute({0, 2, 1, 3});
}
}  // namespace

EchoCache::EchoCache(const ModelConfig& config, std::shared_ptr<const Rope> rope,
                     std::shared_ptr<const Reconstructor> reconstructor, int64_t batch,
                     const EchoCacheOptions& options, torch::Device device, torch::ScalarType dtype)
    : config_(config),
      rope_(std::move(rope)),
      reconstructor_(std::move(reconstructor)),
      batch_(batch),
      options_(options),
      opts_(torch::TensorOptions().dtype(dtype).device(device)) {
  const auto& shape = reconstructor_->plan().shape;
  if (shape != PlanShape::of(config))
    throw Error("EchoCache: the reconstructors' plan is for " + shape.text() + ", the model has " +
                PlanShape::of(config).text());
  if (options_.sink_tokens < 0 || options_.recent_tokens < 0 || options_.chunk_tokens <= 0)
    throw Error("EchoCache: sink and recent must be >= 0 and chunk > 0");
  const int64_t F = config.kv_dim();
  const int64_t cap = std::max<int64_t>(1, options_.capacity);
  stores_.resize(config.num_hidden_layers * 2);
  for (int l = 0; l < config.num_hidden_layers; ++l)
    for (KVKind kind : {KVKind::Key, KVKind::Value}) {
      auto& s = store(l, kind);
      s.global = !reconstructor_->compressed(l, kind);
      if (s.global) {
        s.full = torch::empty({batch_, cap, F}, opts_);
      } else {
        s.sink = torch::empty({batch_, 0, F}, opts_);
        s.recent = torch::empty({batch_, 0, F}, opts_);
        s.kept = torch::empty({batch_, cap, reconstructor_->kept_index(l, kind).numel()}, opts_);
      }
    }
  layer_length_.assign(config.num_hidden_layers, 0);
  v_proj_.resize(config.num_hidden_layers);
  v_bias_.resize(config.num_hidden_layers);
  const int64_t heads = config.num_key_value_heads, D = config.head_dim;
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    if (!reconstructor_->compressed(l, KVKind::Value)) continue;
    auto [map, shift] = reconstructor_->feature_map(l, KVKind::Value);  // [F, in], [F]
    v_proj_[l] = map.to(opts_).view({heads, D, map.size(1)}).contiguous();
    v_bias_[l] = reconstructor_->has_bias() ? shift.to(opts_).view({heads, D}) : torch::Tensor();
  }
}

void EchoCache::append_kind(int layer, KVKind kind, const torch::Tensor& x, int64_t first_position) {
  Store& s = store(layer, kind);
  const int64_t T = x.size(1);
  if (s.global) {
    s.full = grown_along(s.full, 1, s.full_len, s.full_len + T);
    s.full.narrow(1, s.full_len, T).copy_(x);
    s.full_len += T;
    return;
  }
  // Sink positions first, the rest into the recent window. Overflow is compressed in
  // advance(), after the forward: a forward's own tokens and the `recent` before them are
  // exact for all of its queries (decode: i - j <= recent, as training assumes).
  const int64_t to_sink = std::clamp<int64_t>(options_.sink_tokens - first_position, 0, T);
  if (to_sink > 0) s.sink = torch::cat({s.sink, x.narrow(1, 0, to_sink)}, 1);
  if (to_sink < T) s.recent = torch::cat({s.recent, x.narrow(1, to_sink, T - to_sink)}, 1);
}

void EchoCache::compress_overflow(int layer, KVKind kind) {
  Store& s = store(layer, kind);
  if (s.global) return;
  const int64_t overflow = s.recent.size(1) - options_.recent_tokens;
  if (overflow <= 0) return;
  auto leaving = s.recent.narrow(1, 0, overflow).index_select(2, reconstructor_->kept_index(layer, kind));
  s.kept = grown_along(s.kept, 1, s.kept_len, s.kept_len + overflow);
  s.kept.narrow(1, s.kept_len, overflow).copy_(leaving);
  s.kept_len += overflow;
  s.recent = s.recent.narrow(1, overflow, s.recent.size(1) - overflow).clone();
}

void EchoCache::append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v,
                       const torch::Tensor& positions) {
  if (k_pre_rope.size(0) != batch_)
    throw Error("EchoCache: batch " + std::to_string(k_pre_rope.size(0)) + " != cache batch " + std::to_string(batch_));
  const int64_t first = layer_length_[layer];
  append_kind(layer, KVKind::Key, to_features(k_pre_rope.to(opts_.dtype())), first);
  append_kind(layer, KVKind::Value, to_features(v.to(opts_.dtype())), first);
  layer_length_[layer] += k_pre_rope.size(2);
}

torch::Tensor EchoCache::features(int layer, KVKind kind, int64_t a, int64_t b) const {
  const Store& s = store(layer, kind);
  if (s.global) return s.full.narrow(1, a, b - a);
  const int64_t n = layer_length_[layer];
  const int64_t sink_len = s.sink.size(1), recent_start = n - s.recent.size(1);
  if (b <= sink_len) return s.sink.narrow(1, a, b - a);
  if (a >= recent_start) return s.recent.narrow(1, a - recent_start, b - a);
  // [a, b) lies inside the compressed middle (for_each_block never straddles).
  const double t0 = monotonic_seconds();
  auto input = reconstructor_input(layer, kind, a, b);
  auto own = torch::zeros({batch_, b - a, config_.kv_dim()}, opts_);
  own.index_copy_(2, reconstructor_->kept_index(layer, kind), s.kept.narrow(1, a - sink_len, b - a));
  auto full = reconstructor_->assemble(layer, kind, own, reconstructor_->rebuild(layer, kind, input));
  rebuild_seconds_ += monotonic_seconds() - t0;
  return full;
}

bool EchoCache::in_middle(int layer, KVKind kind, int64_t a, int64_t b) const {
  const Store& s = store(layer, kind);
  if (s.global) return false;
  return a >= s.sink.size(1) && b <= layer_length_[layer] - s.recent.size(1);
}

torch::Tensor EchoCache::reconstructor_input(int layer, KVKind kind, int64_t a, int64_t b) const {
  const Store& s = store(layer, kind);
  std::vector<torch::Tensor> parts;
  for (int src : reconstructor_->plan().at(layer, kind).sources) parts.push_back(store(src, kind).full.narrow(1, a, b - a));
  if (s.kept.size(2) > 0) parts.push_back(s.kept.narrow(1, a - s.sink.size(1), b - a));
  return torch::cat(parts, 2);  // [B, len, sources * F + kept], the map's input order
}

void EchoCache::for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) {
  const int64_t n = layer_length_[layer];
  if (n == 0) return;
  // Segment boundaries: sink | compressed middle | recent (from a compressed kind, if any).
  std::vector<int64_t> cuts = {0};
  for (KVKind kind : {KVKind::Key, KVKind::Value}) {
    const Store& s = store(layer, kind);
    if (s.global) continue;
    cuts.push_back(s.sink.size(1));
    cuts.push_back(n - s.recent.size(1));
    break;
  }
  cuts.push_back(n);
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (size_t i = 0; i + 1 < cuts.size(); ++i)
    for (int64_t a = cuts[i]; a < cuts[i + 1]; a += options_.chunk_tokens)
      ranges.push_back({a, std::min(cuts[i + 1], a + options_.chunk_tokens)});
  const int64_t heads = config_.num_key_value_heads;
  for (const auto& [a, b] : ranges) {
    KVBlock block;
    block.positions = torch::arange(a, b, torch::TensorOptions().dtype(torch::kInt64).device(opts_.device()));
    block.min_position = a;
    block.max_position = b - 1;
    block.k = rope_->apply(to_heads(features(layer, KVKind::Key, a, b), heads), block.positions);
    // Latent values cost Hq * Tq * in per token, rebuilding costs in * dropped: decode steps
    // (small Tq) weight the inputs, long prefill chunks rebuild.
    const int64_t queries = config_.num_attention_heads * (n - committed_);
    if (in_middle(layer, KVKind::Value, a, b) && queries < reconstructor_->dropped_index(layer, KVKind::Value).numel()) {
      // Values stay in the reconstructor's input space; attention projects after weighting.
      block.v_latent = reconstructor_input(layer, KVKind::Value, a, b);
      block.v_proj = v_proj_[layer];
      block.v_bias = v_bias_[layer];
    } else {
      block.v = to_heads(features(layer, KVKind::Value, a, b), heads);
    }
    block.is_only = ranges.size() == 1;
    visit(block);
  }
}

void EchoCache::advance(int64_t tokens) {
  committed_ += tokens;
  for (int64_t len : layer_length_)
    if (len != committed_)
      throw Error("EchoCache: a layer holds " + std::to_string(len) + " tokens, expected " + std::to_string(committed_));
  for (int l = 0; l < config_.num_hidden_layers; ++l)
    for (KVKind kind : {KVKind::Key, KVKind::Value}) compress_overflow(l, kind);
}

int64_t EchoCache::bytes() const {
  const int64_t elem = torch::elementSize(c10::typeMetaToScalarType(opts_.dtype()));
  int64_t n = 0;
  for (const auto& s : stores_) {
    if (s.global) n += s.full_len * s.full.size(2);
    else n += (s.sink.size(1) + s.recent.size(1)) * s.sink.size(2) + s.kept_len * s.kept.size(2);
  }
  return n * batch_ * elem;
}

torch::Tensor EchoCache::global_features(int layer, KVKind kind) {
  Store& s = store(layer, kind);
  if (!s.global)
    throw Error("EchoCache: " + std::string(kind == KVKind::Key ? "key" : "value") + " layer " + std::to_string(layer) +
                " is compressed, not global");
  return s.full.narrow(1, 0, s.full_len);
}

torch::Tensor EchoCache::stored_bytes(int layer, KVKind kind, int64_t begin, int64_t n) const {
  const Store& s = store(layer, kind);
  const int64_t len = layer_length_[layer];
  if (begin < 0 || n < 0 || begin + n > len) throw Error("EchoCache::stored_bytes: tokens outside the cache");
  const int64_t row = batch_ * torch::elementSize(c10::typeMetaToScalarType(opts_.dtype()));
  const int64_t F = config_.kv_dim();
  if (s.global) return torch::full({n}, F * row, torch::kInt64);
  // Sink and recent tokens hold every feature, the middle only the plan's kept ones.
  auto pos = torch::arange(begin, begin + n, torch::kInt64);
  auto whole = (pos < s.sink.size(1)) | (pos >= len - s.recent.size(1));
  return torch::where(whole, torch::full({n}, F * row, torch::kInt64), torch::full({n}, s.kept.size(2) * row, torch::kInt64));
}

int64_t EchoCache::full_bytes() const {
  const int64_t elem = torch::elementSize(c10::typeMetaToScalarType(opts_.dtype()));
  int64_t n = 0;
  for (int64_t len : layer_length_) n += 2 * len * config_.kv_dim();
  return n * batch_ * elem;
}

void EchoCache::reset() {
  committed_ = 0;
  std::fill(layer_length_.begin(), layer_length_.end(), 0);
  for (auto& s : stores_) {
    s.full_len = 0;
    s.kept_len = 0;
    if (!s.global) {
      s.sink = s.sink.narrow(1, 0, 0);
      s.recent = s.recent.narrow(1, 0, 0);
    }
  }
}

}  // namespace echokv
