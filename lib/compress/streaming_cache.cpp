#include "compress/streaming_cache.h"

#include "core/error.h"

namespace echokv {

StreamingCache::StreamingCache(const ModelConfig& config, std::shared_ptr<const Rope> rope, int64_t batch, int64_t sink,
                               int64_t window, torch::Device device, torch::ScalarType dtype)
    : rope_(std::move(rope)),
      batch_(batch),
      kv_heads_(config.num_key_value_heads),
      head_dim_(config.head_dim),
      sink_(sink),
      window_(window) {
  if (sink < 0 || window < 0 || sink + window == 0) throw Error("StreamingCache: sink and window must be >= 0, not both 0");
  auto opts = torch::TensorOptions().dtype(dtype).device(device);
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    k_.push_back(torch::zeros({batch_, kv_heads_, sink_ + window_, head_dim_}, opts));
    v_.push_back(torch::zeros({batch_, kv_heads_, sink_ + window_, head_dim_}, opts));
  }
  pk_.resize(config.num_hidden_layers);
  pv_.resize(config.num_hidden_layers);
  ppos_.resize(config.num_hidden_layers);
  slot_positions_ = torch::full({sink_ + window_}, -1, torch::TensorOptions().dtype(torch::kInt64).device(device));
  element_size_ = k_.empty() ? 0 : k_[0].element_size();
}

void StreamingCache::append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v, const torch::Tensor& positions) {
  if (k_pre_rope.size(0) != batch_) throw Error("StreamingCache: batch differs from the cache's");
  if (pk_[layer].defined()) throw Error("StreamingCache: a layer appended twice in one forward");
  pk_[layer] = rope_->apply(k_pre_rope, positions);
  pv_[layer] = v;
  ppos_[layer] = positions.to(torch::kInt64);
}

void StreamingCache::for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) {
  const int64_t kept = std::min(committed_, sink_) + std::min(window_, std::max<int64_t>(0, committed_ - sink_));
  if (kept > 0) {
    KVBlock b;
    b.k = k_[layer].narrow(2, 0, kept);
    b.v = v_[layer].narrow(2, 0, kept);
    b.positions = slot_positions_.narrow(0, 0, kept);
    b.min_position = sink_ > 0 ? 0 : std::max<int64_t>(0, committed_ - window_);
    b.max_position = committed_ - 1;
    visit(b);
  }
  if (pk_[layer].defined()) {
    KVBlock b;
    b.k = pk_[layer];
    b.v = pv_[layer];
    b.positions = ppos_[layer];
    b.min_position = committed_;
    b.max_position = committed_ + pk_[layer].size(2) - 1;
    b.is_only = kept == 0;
    visit(b);
  }
}

void StreamingCache::advance(int64_t tokens) {
  const auto device = slot_positions_.device();
  // Slots of the new positions committed_ .. committed_+tokens-1 that survive: sinks, and the
  // last `window` of the rest (ring slot sink + (p - sink) % window).
  std::vector<int64_t> src, dst, pos;
  const int64_t first_kept_recent = std::max(sink_, committed_ + tokens - window_);
  for (int64_t i = 0; i < tokens; ++i) {
    const int64_t p = committed_ + i;
    if (p < sink_) {
      src.push_back(i), dst.push_back(p), pos.push_back(p);
    } else if (window_ > 0 && p >= first_kept_recent) {
      src.push_back(i), dst.push_back(sink_ + (p - sink_) % window_), pos.push_back(p);
    }
  }
  auto src_t = torch::tensor(src, torch::kInt64).to(device);
  auto dst_t = torch::tensor(dst, torch::kInt64).to(device);
  for (size_t l = 0; l < k_.size(); ++l) {
    if (!pk_[l].defined() || pk_[l].size(2) != tokens)
      throw Error("StreamingCache: every layer must append each token once per forward");
    if (!src.empty()) {
      k_[l].index_copy_(2, dst_t, pk_[l].index_select(2, src_t).to(k_[l].scalar_type()));
      v_[l].index_copy_(2, dst_t, pv_[l].index_select(2, src_t).to(v_[l].scalar_type()));
    }
    pk_[l] = torch::Tensor();
    pv_[l] = torch::Tensor();
    ppos_[l] = torch::Tensor();
  }
  if (!src.empty()) slot_positions_.index_copy_(0, dst_t, torch::tensor(pos, torch::kInt64).to(device));
  committed_ += tokens;
}

int64_t StreamingCache::bytes() const {
  const int64_t kept = std::min(committed_, sink_) + std::min(window_, std::max<int64_t>(0, committed_ - sink_));
  return 2 * kept * batch_ * kv_heads_ * head_dim_ * element_size_ * static_cast<int64_t>(k_.size());
}

int64_t StreamingCache::full_bytes() const {
  return 2 * committed_ * batch_ * kv_heads_ * head_dim_ * element_size_ * static_cast<int64_t>(k_.size());
}

void StreamingCache::reset() {
  committed_ = 0;
  slot_positions_.fill_(-1);
  for (size_t l = 0; l < k_.size(); ++l) pk_[l] = pv_[l] = ppos_[l] = torch::Tensor();
}

}  // namespace echokv
