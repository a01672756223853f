#include "echo/switching_cache.h"

#include "core/error.h"

namespace echokv {

SwitchingEchoCache::SwitchingEchoCache(std::function<std::unique_ptr<FullCache>()> make_full, int64_t switch_above_tokens,
                                       std::function<std::unique_ptr<EchoCache>()> make_echo,
                                       std::shared_ptr<const Rope> rope)
    : make_full_(std::move(make_full)),
      make_echo_(std::move(make_echo)),
      full_(make_full_()),
      limit_(switch_above_tokens),
      rope_(std::move(rope)) {
  if (limit_ < 0) throw Error("SwitchingEchoCache: the switch threshold must be >= 0 tokens");
}

void SwitchingEchoCache::convert() {
  auto echo = make_echo_();
  const int64_t n = full_->next_position();
  const int layers = static_cast<int>(echo->reconstructor().plan().shape.num_layers);
  // The stored keys carry RoPE at their positions: rotating by the negative angle gives back
  // the keys attention appended. Chunks bound the temporary memory.
  const int64_t chunk = 1024;
  for (int64_t s = 0; s < n; s += chunk) {
    const int64_t len = std::min(chunk, n - s);
    auto positions = torch::arange(s, s + len, torch::TensorOptions().dtype(torch::kInt64).device(full_->keys(0).device()));
    for (int l = 0; l < layers; ++l) {
      auto k = full_->keys(l).narrow(2, s, len), v = full_->values(l).narrow(2, s, len);
      echo->append(l, rope_->apply(k, -positions), v, positions);
    }
    echo->advance(len);
  }
  switched_at_ = n;
  echo_ = std::move(echo);
  full_.reset();  // the full cache's memory is released here
}

void SwitchingEchoCache::append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v,
                                const torch::Tensor& positions) {
  if (layer == 0 && !echo_ && full_->next_position() + k_pre_rope.size(2) > limit_) convert();
  active().append(layer, k_pre_rope, v, positions);
}

void SwitchingEchoCache::for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) {
  active().for_each_block(layer, visit);
}

void SwitchingEchoCache::advance(int64_t tokens) { active().advance(tokens); }

void SwitchingEchoCache::reset() {
  echo_.reset();
  if (full_) full_->reset();
  else full_ = make_full_();
  switched_at_ = -1;
}

}  // namespace echokv
