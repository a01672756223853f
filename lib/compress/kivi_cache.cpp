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

void check_kivi_options(const KiviOptions& o, int64_t head_dim) {
  check_bits(o.bits);
  if (o.group < 1 || o.residual < o.group || o.residual % o.group != 0)
    throw Error("KIVI: residual (" + std::to_string(o.residual) + ") must be a positive multiple of group (" +
                std::to_string(o.group) + ")");
  const int64_t value_group = std::min(o.group, head_dim);
  if (head_dim % value_group != 0)
    throw Error("KIVI: head_dim " + std::to_string(head_dim) + " does not split into value groups of " +
                std::to_string(value_group));
  if ((o.residual * o.bits) % 8 != 0 || (head_dim * o.bits) % 8 != 0)
    throw Error("KIVI: residual and head_dim must fill whole bytes of codes");
}

KiviTokenList::KiviTokenList(int64_t batch, int64_t heads, int64_t head_dim, KiviOptions options, torch::Device device,
                             torch::ScalarType dtype)
    : o_(options),
      batch_(batch),
      heads_(heads),
      head_dim_(head_dim),
      value_group_(std::min(options.group, head_dim)),
      element_size_(static_cast<int64_t>(c10::elementSize(dtype))),
      device_(device),
      dtype_(dtype) {
  check_kivi_options(o_, head_dim_);
  const auto opts = torch::TensorOptions().dtype(dtype_).device(device_);
  key_tail_ = torch::empty({batch_, heads_, o_.residual, head_dim_}, opts);
  value_tail_ = torch::empty({batch_, heads_, o_.residual + 16, head_dim_}, opts);
  value_packed_ = torch::empty({batch_, heads_, 16, head_dim_ * o_.bits / 8}, opts.dtype(torch::kUInt8));
  value_scale_ = torch::empty({batch_, heads_, 16, head_dim_ / value_group_}, opts);
  value_min_ = torch::empty_like(value_scale_);
}

void KiviTokenList::add_pending(const torch::Tensor& k, const torch::Tensor& v, const std::vector<int64_t>& positions) {
  if (k.size(2) != static_cast<int64_t>(positions.size())) throw Error("KIVI: one position per pending token");
  auto kk = k.to(dtype_), vv = v.to(dtype_);
  pending_k_ = pending_k_.defined() ? torch::cat({pending_k_, kk}, 2) : kk;
  pending_v_ = pending_v_.defined() ? torch::cat({pending_v_, vv}, 2) : vv;
  pending_positions_.insert(pending_positions_.end(), positions.begin(), positions.end());
}

torch::Tensor KiviTokenList::block_keys(const KeyBlock& b) const {
  auto codes = unpack_codes(b.packed, o_.bits);                                  // [B, H, D, residual]
  return dequantize_groups(codes, b.scale, b.min, o_.group).transpose(2, 3).to(dtype_);  // [B, H, residual, D]
}

torch::Tensor KiviTokenList::values_between(int64_t from, int64_t to) const {
  std::vector<torch::Tensor> parts;
  const int64_t q_end = std::min(to, values_quantized_);
  if (from < q_end) {
    auto codes = unpack_codes(value_packed_.narrow(2, from, q_end - from), o_.bits);  // [B, H, r, D]
    parts.push_back(dequantize_groups(codes, value_scale_.narrow(2, from, q_end - from),
                                      value_min_.narrow(2, from, q_end - from), value_group_)
                        .to(dtype_));
  }
  const int64_t t_begin = std::max(from, values_quantized_);
  if (t_begin < to) parts.push_back(value_tail_.narrow(2, t_begin - values_quantized_, to - t_begin));
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 2);
}

torch::Tensor KiviTokenList::positions_between(int64_t from, int64_t to) const {
  const auto opts = torch::TensorOptions().dtype(torch::kInt64).device(device_);
  if (contiguous_) return torch::arange(from, to, opts);
  return positions_device_.narrow(0, from, to - from);
}

int64_t KiviTokenList::blocks() const {
  return static_cast<int64_t>(key_blocks_.size()) + (key_tail_len_ > 0) + (pending() > 0);
}

void KiviTokenList::visit(const std::function<void(KVBlock&)>& emit) const {
  auto block = [&](torch::Tensor k, torch::Tensor v, torch::Tensor positions, int64_t first, int64_t last) {
    KVBlock b;
    b.k = std::move(k);
    b.v = std::move(v);
    b.positions = std::move(positions);
    b.min_position = first;
    b.max_position = last;
    emit(b);
  };
  // Positions within a list are ascending (tokens are added in order), so a block's range is its ends.
  int64_t at = 0;
  for (const auto& kb : key_blocks_) {  // one quantized block at a time
    block(block_keys(kb), values_between(at, at + o_.residual), positions_between(at, at + o_.residual),
          positions_[static_cast<size_t>(at)], positions_[static_cast<size_t>(at + o_.residual - 1)]);
    at += o_.residual;
  }
  if (key_tail_len_ > 0)
    block(key_tail_.narrow(2, 0, key_tail_len_), values_between(at, committed_), positions_between(at, committed_),
          positions_[static_cast<size_t>(at)], positions_.back());
  if (pending() > 0)
    block(pending_k_, pending_v_, torch::tensor(pending_positions_, torch::kInt64).to(device_), pending_positions_.front(),
          pending_positions_.back());
}

void KiviTokenList::commit_keys(const torch::Tensor& k) {
  const int64_t T = k.size(2);
  for (int64_t done = 0; done < T;) {
    const int64_t take = std::min(o_.residual - key_tail_len_, T - done);
    key_tail_.narrow(2, key_tail_len_, take).copy_(k.narrow(2, done, take));
    key_tail_len_ += take;
    done += take;
    if (key_tail_len_ == o_.residual) {  // the tail is full: quantize it per channel, groups along tokens
      auto q = quantize_groups(key_tail_.transpose(2, 3), o_.bits, o_.group, dtype_);  // codes [B, H, D, residual]
      key_blocks_.push_back({pack_codes(q.codes, o_.bits), q.scale, q.min});
      key_tail_len_ = 0;
    }
  }
}

void KiviTokenList::commit_values(const torch::Tensor& v) {
  const int64_t T = v.size(2);
  if (value_tail_len_ + T > value_tail_.size(2))
    value_tail_ = resized_along(value_tail_, 2, value_tail_len_, doubled_capacity(value_tail_.size(2), value_tail_len_ + T));
  value_tail_.narrow(2, value_tail_len_, T).copy_(v);
  value_tail_len_ += T;
  const int64_t over = value_tail_len_ - o_.residual;
  if (over <= 0) return;
  // The oldest `over` tokens leave the window: quantized per token, groups along channels.
  auto q = quantize_groups(value_tail_.narrow(2, 0, over), o_.bits, value_group_, dtype_);
  const int64_t need = values_quantized_ + over, cap = doubled_capacity(value_packed_.size(2), need);
  if (need > value_packed_.size(2)) {
    value_packed_ = resized_along(value_packed_, 2, values_quantized_, cap);
    value_scale_ = resized_along(value_scale_, 2, values_quantized_, cap);
    value_min_ = resized_along(value_min_, 2, values_quantized_, cap);
  }
  value_packed_.narrow(2, values_quantized_, over).copy_(pack_codes(q.codes, o_.bits));
  value_scale_.narrow(2, values_quantized_, over).copy_(q.scale);
  value_min_.narrow(2, values_quantized_, over).copy_(q.min);
  values_quantized_ = need;
  auto keep = value_tail_.narrow(2, over, o_.residual).clone();
  value_tail_.narrow(2, 0, o_.residual).copy_(keep);
  value_tail_len_ = o_.residual;
}

void KiviTokenList::commit() {
  const int64_t T = pending();
  if (T == 0) return;
  const bool was_contiguous = contiguous_;
  for (int64_t i = 0; i < T && contiguous_; ++i)
    if (pending_positions_[static_cast<size_t>(i)] != committed_ + i) contiguous_ = false;
  if (!contiguous_) {  // the committed positions kept on the device for blocks, grown by doubling
    if (was_contiguous) positions_device_ = torch::tensor(positions_, torch::kInt64).to(device_);
    positions_device_ = grown_along(positions_device_, 0, committed_, committed_ + T);
    positions_device_.narrow(0, committed_, T).copy_(torch::tensor(pending_positions_, torch::kInt64));
  }
  commit_keys(pending_k_);
  commit_values(pending_v_);
  positions_.insert(positions_.end(), pending_positions_.begin(), pending_positions_.end());
  committed_ += T;
  pending_k_ = torch::Tensor();
  pending_v_ = torch::Tensor();
  pending_positions_.clear();
}

int64_t KiviTokenList::bytes() const {
  const int64_t rows = batch_ * heads_;
  int64_t total = 0;
  for (const auto& kb : key_blocks_) total += kb.packed.numel() + (kb.scale.numel() + kb.min.numel()) * element_size_;
  total += (key_tail_len_ + value_tail_len_ + 2 * pending()) * rows * head_dim_ * element_size_;
  total += values_quantized_ * rows * (head_dim_ * o_.bits / 8 + 2 * (head_dim_ / value_group_) * element_size_);
  return total;
}

KiviCache::KiviCache(const ModelConfig& config, std::shared_ptr<const Rope> rope, int64_t batch, KiviOptions options,
                     torch::Device device, torch::ScalarType dtype)
    : config_(config), rope_(std::move(rope)), o_(options), batch_(batch), device_(device), dtype_(dtype) {
  check_kivi_options(o_, config.head_dim);
  reset();
}

void KiviCache::reset() {
  layers_.clear();
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l)
    layers_.emplace_back(batch_, config_.num_key_value_heads, config_.head_dim, o_, device_, dtype_);
  committed_ = 0;
}

void KiviCache::append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v, const torch::Tensor& positions) {
  // k_pre_rope, v: [B, Hkv, T, D]; positions: [T], the forward's tokens after the committed ones
  auto& list = layers_.at(static_cast<size_t>(layer));
  std::vector<int64_t> host(static_cast<size_t>(k_pre_rope.size(2)));
  for (size_t i = 0; i < host.size(); ++i) host[i] = committed_ + list.pending() + static_cast<int64_t>(i);
  list.add_pending(rope_->apply(k_pre_rope, positions), v, host);
}

void KiviCache::for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) {
  const auto& list = layers_.at(static_cast<size_t>(layer));
  const bool only = list.blocks() == 1;
  list.visit([&](KVBlock& b) {
    b.is_only = only;
    visit(b);
  });
}

void KiviCache::advance(int64_t tokens) {
  for (auto& l : layers_) {
    if (l.pending() != tokens)
      throw Error("KIVI cache: a layer appended " + std::to_string(l.pending()) + " tokens, the forward " + std::to_string(tokens));
    l.commit();
  }
  committed_ += tokens;
}

int64_t KiviCache::bytes() const {
  int64_t total = 0;
  for (const auto& l : layers_) total += l.bytes();
  return total;
}

int64_t KiviCache::full_bytes() const {
  const int64_t pending = layers_.empty() ? 0 : layers_[0].pending();
  return (committed_ + pending) * static_cast<int64_t>(layers_.size()) * batch_ * config_.num_key_value_heads *
         config_.head_dim * 2 * static_cast<int64_t>(c10::elementSize(dtype_));
}

}  // namespace echokv
