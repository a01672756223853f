#include "compress/kivi_cache.h"

#include <algorithm>

#include "cache/growable.h"
#include "core/error.h"

namespace echokv {

namespace {

torch::Tensor code_weights(int bits, torch::Device device) {  // 2^(bits x i) for the codes of one byte
  const int per = 8 / bits;
  std::vector<int32_t> w(static_cast<size_t>(per));
  for (int i = 0; i < per; ++i) w[static_cast<size_t>(i)] = 1 << (bits * i);
  return torch::tensor(w, torch::kInt32).to(device);
}

void check_bits(int bits) {
  if (bits != 2 && bits != 4 && bits != 8) throw Error("KIVI: bits must be 2, 4 or 8, got " + std::to_string(bits));
}

}  // namespace

QuantizedGroups quantize_groups(const torch::Tensor& x, int bits, int64_t group, torch::ScalarType stored) {
  check_bits(bits);
  const int64_t n = x.size(-1);
  if (group < 1 || n % group != 0) throw Error("KIVI: " + std::to_string(n) + " values do not split into groups of " + std::to_string(group));
  auto sizes = x.sizes().vec();
  sizes.back() = n / group;
  sizes.push_back(group);
  auto g = x.to(torch::kFloat32).reshape(sizes);                      // [..., n / group, group]
  // The stored (rounded) minimum and scale are the ones the codes are computed against.
  auto mn = std::get<0>(g.min(-1)).to(stored).to(torch::kFloat32);   // [..., n / group]
  auto mx = std::get<0>(g.max(-1));
  const double levels = double((1 << bits) - 1);
  auto scale = ((mx - mn) / levels).to(stored).to(torch::kFloat32);
  auto safe = torch::where(scale > 0, scale, torch::ones_like(scale));
  auto codes = ((g - mn.unsqueeze(-1)) / safe.unsqueeze(-1)).round().clamp(0, levels);
  codes = torch::where(scale.unsqueeze(-1) > 0, codes, torch::zeros_like(codes));
  return {codes.reshape(x.sizes()).to(torch::kUInt8), scale.to(stored), mn.to(stored)};
}

torch::Tensor dequantize_groups(const torch::Tensor& codes, const torch::Tensor& scale, const torch::Tensor& min,
                                int64_t group) {
  auto sizes = codes.sizes().vec();
  sizes.back() /= group;
  sizes.push_back(group);
  auto c = codes.to(torch::kFloat32).reshape(sizes);
  return (c * scale.to(torch::kFloat32).unsqueeze(-1) + min.to(torch::kFloat32).unsqueeze(-1)).reshape(codes.sizes());
}


torch::Tensor pack_codes(const torch::Tensor& codes, int bits) {
  check_bits(bits);
  const int64_t per = 8 / bits, n = codes.size(-1);
  if (n % per != 0) throw Error("KIVI: " + std::to_string(n) + " codes do not pack " + std::to_string(per) + " to a byte");
  auto sizes = codes.sizes().vec();
  sizes.back() = n / per;
  sizes.push_back(per);
  return (codes.to(torch::kInt32).reshape(sizes) * code_weights(bits, codes.device())).sum(-1).to(torch::kUInt8);
}

torch::Tensor unpack_codes(const torch::Tensor& packed, int bits) {
  check_bits(bits);
  auto spread = torch::div(packed.to(torch::kInt32).unsqueeze(-1), code_weights(bits, packed.device()), "floor");
  auto codes = torch::remainder(spread, 1 << bits).to(torch::kUInt8);  // [..., n / per, per]
  auto sizes = packed.sizes().vec();
  sizes.back() *= 8 / bits;
  return codes.reshape(sizes);
}

KiviCache::KiviCache(const ModelConfig& config, std::shared_ptr<const Rope> rope, int64_t batch, KiviOptions options,
                     torch::Device device, torch::ScalarType dtype)
    : rope_(std::move(rope)),
      o_(options),
      batch_(batch),
      kv_heads_(config.num_key_value_heads),
      head_dim_(config.head_dim),
      value_group_(std::min(options.group, config.head_dim)),
      device_(device),
      dtype_(dtype),
      element_size_(static_cast<int64_t>(c10::elementSize(dtype))),
      layers_(static_cast<size_t>(config.num_hidden_layers)) {
  check_bits(o_.bits);
  if (o_.group < 1 || o_.residual < o_.group || o_.residual % o_.group != 0)
    throw Error("KIVI: residual (" + std::to_string(o_.residual) + ") must be a positive multiple of group (" +
                std::to_string(o_.group) + ")");
  if (head_dim_ % value_group_ != 0)
    throw Error("KIVI: head_dim " + std::to_string(head_dim_) + " does not split into value groups of " +
                std::to_string(value_group_));
  if ((o_.residual * o_.bits) % 8 != 0 || (head_dim_ * o_.bits) % 8 != 0)
    throw Error("KIVI: residual and head_dim must fill whole bytes of codes");
  reset();
}

void KiviCache::reset() {
  for (auto& l : layers_) {
    l = Layer{};
    l.key_tail = torch::empty({batch_, kv_heads_, o_.residual, head_dim_}, torch::TensorOptions().dtype(dtype_).device(device_));
    l.value_tail = torch::empty({batch_, kv_heads_, o_.residual + 16, head_dim_}, l.key_tail.options());
    const auto u8 = torch::TensorOptions().dtype(torch::kUInt8).device(device_);
    l.value_packed = torch::empty({batch_, kv_heads_, 16, head_dim_ * o_.bits / 8}, u8);
    l.value_scale = torch::empty({batch_, kv_heads_, 16, head_dim_ / value_group_}, l.key_tail.options());
    l.value_min = torch::empty_like(l.value_scale);
  }
  committed_ = 0;
}

void KiviCache::append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v, const torch::Tensor& positions) {
  // k_pre_rope, v: [B, Hkv, T, D]; positions: [T]
  Layer& l = layers_.at(static_cast<size_t>(layer));
  auto k = rope_->apply(k_pre_rope, positions).to(dtype_);
  auto vv = v.to(dtype_);
  l.pending_k = l.pending_k.defined() ? torch::cat({l.pending_k, k}, 2) : k;
  l.pending_v = l.pending_v.defined() ? torch::cat({l.pending_v, vv}, 2) : vv;
}

torch::Tensor KiviCache::block_keys(const KeyBlock& b) const {
  auto codes = unpack_codes(b.packed, o_.bits);                                  // [B, Hkv, D, residual]
  return dequantize_groups(codes, b.scale, b.min, o_.group).transpose(2, 3).to(dtype_);  // [B, Hkv, residual, D]
}

torch::Tensor KiviCache::values_between(const Layer& l, int64_t from, int64_t to) const {
  std::vector<torch::Tensor> parts;
  const int64_t q_end = std::min(to, l.values_quantized);
  if (from < q_end) {
    auto codes = unpack_codes(l.value_packed.narrow(2, from, q_end - from), o_.bits);  // [B, Hkv, r, D]
    parts.push_back(dequantize_groups(codes, l.value_scale.narrow(2, from, q_end - from),
                                      l.value_min.narrow(2, from, q_end - from), value_group_)
                        .to(dtype_));
  }
  const int64_t t_begin = std::max(from, l.values_quantized);
  if (t_begin < to) parts.push_back(l.value_tail.narrow(2, t_begin - l.values_quantized, to - t_begin));
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 2);
}

void KiviCache::for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) {
  const Layer& l = layers_.at(static_cast<size_t>(layer));
  const int64_t pending = l.pending_k.defined() ? l.pending_k.size(2) : 0;
  const int64_t blocks = static_cast<int64_t>(l.key_blocks.size()) + (l.key_tail_len > 0) + (pending > 0);
  auto emit = [&](torch::Tensor k, torch::Tensor v, int64_t first) {
    KVBlock b;
    const int64_t n = k.size(2);
    b.k = std::move(k);
    b.v = std::move(v);
    b.positions = torch::arange(first, first + n, torch::TensorOptions().dtype(torch::kInt64).device(device_));
    b.min_position = first;
    b.max_position = first + n - 1;
    b.is_only = blocks == 1;
    visit(b);
  };
  int64_t at = 0;
  for (const auto& kb : l.key_blocks) {  // one quantized block at a time
    emit(block_keys(kb), values_between(l, at, at + o_.residual), at);
    at += o_.residual;
  }
  if (l.key_tail_len > 0) emit(l.key_tail.narrow(2, 0, l.key_tail_len), values_between(l, at, committed_), at);
  if (pending > 0) emit(l.pending_k, l.pending_v, committed_);
}

void KiviCache::commit_keys(Layer& l, const torch::Tensor& k) {
  const int64_t T = k.size(2);
  for (int64_t done = 0; done < T;) {
    const int64_t take = std::min(o_.residual - l.key_tail_len, T - done);
    l.key_tail.narrow(2, l.key_tail_len, take).copy_(k.narrow(2, done, take));
    l.key_tail_len += take;
    done += take;
    if (l.key_tail_len == o_.residual) {  // the tail is full: quantize it per channel, groups along tokens
      auto q = quantize_groups(l.key_tail.transpose(2, 3), o_.bits, o_.group, dtype_);  // codes [B, Hkv, D, residual]
      l.key_blocks.push_back({pack_codes(q.codes, o_.bits), q.scale, q.min});
      l.key_tail_len = 0;
    }
  }
}

void KiviCache::commit_values(Layer& l, const torch::Tensor& v) {
  const int64_t T = v.size(2);
  if (l.value_tail_len + T > l.value_tail.size(2))
    l.value_tail = resized_along(l.value_tail, 2, l.value_tail_len, doubled_capacity(l.value_tail.size(2), l.value_tail_len + T));
  l.value_tail.narrow(2, l.value_tail_len, T).copy_(v);
  l.value_tail_len += T;
  const int64_t over = l.value_tail_len - o_.residual;
  if (over <= 0) return;
  // The oldest `over` tokens leave the window: quantized per token, groups along channels.
  auto q = quantize_groups(l.value_tail.narrow(2, 0, over), o_.bits, value_group_, dtype_);
  const int64_t need = l.values_quantized + over, cap = doubled_capacity(l.value_packed.size(2), need);
  if (need > l.value_packed.size(2)) {
    l.value_packed = resized_along(l.value_packed, 2, l.values_quantized, cap);
    l.value_scale = resized_along(l.value_scale, 2, l.values_quantized, cap);
    l.value_min = resized_along(l.value_min, 2, l.values_quantized, cap);
  }
  l.value_packed.narrow(2, l.values_quantized, over).copy_(pack_codes(q.codes, o_.bits));
  l.value_scale.narrow(2, l.values_quantized, over).copy_(q.scale);
  l.value_min.narrow(2, l.values_quantized, over).copy_(q.min);
  l.values_quantized = need;
  auto keep = l.value_tail.narrow(2, over, o_.residual).clone();
  l.value_tail.narrow(2, 0, o_.residual).copy_(keep);
  l.value_tail_len = o_.residual;
}

void KiviCache::advance(int64_t tokens) {
  for (auto& l : layers_) {
    const int64_t pending = l.pending_k.defined() ? l.pending_k.size(2) : 0;
    if (pending != tokens) throw Error("KIVI cache: a layer appended " + std::to_string(pending) + " tokens, the forward " + std::to_string(tokens));
    if (tokens == 0) continue;
    commit_keys(l, l.pending_k);
    commit_values(l, l.pending_v);
    l.pending_k = torch::Tensor();
    l.pending_v = torch::Tensor();
  }
  committed_ += tokens;
}

int64_t KiviCache::quantized_keys() const { return static_cast<int64_t>(layers_.at(0).key_blocks.size()) * o_.residual; }
int64_t KiviCache::quantized_values() const { return layers_.at(0).values_quantized; }

int64_t KiviCache::bytes() const {
  const int64_t rows = batch_ * kv_heads_;
  int64_t total = 0;
  for (const auto& l : layers_) {
    const int64_t pending = l.pending_k.defined() ? l.pending_k.size(2) : 0;
    for (const auto& kb : l.key_blocks) total += kb.packed.numel() + (kb.scale.numel() + kb.min.numel()) * element_size_;
    total += (l.key_tail_len + l.value_tail_len + 2 * pending) * rows * head_dim_ * element_size_;
    total += l.values_quantized * rows * (head_dim_ * o_.bits / 8 + 2 * (head_dim_ / value_group_) * element_size_);
  }
  return total;
}

int64_t KiviCache::full_bytes() const {
  const int64_t pending = layers_.empty() || !layers_[0].pending_k.defined() ? 0 : layers_[0].pending_k.size(2);
  return (committed_ + pending) * static_cast<int64_t>(layers_.size()) * batch_ * kv_heads_ * head_dim_ * 2 * element_size_;
}

}  // namespace echokv
