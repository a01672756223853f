// EchoKV's on-demand transition inside a request (the paper: "on-demand transitions between
// standard and compressed inference"): the request starts on the full cache, at full speed
// while memory is abundant, and when the cache would pass a budget (tokens, or bytes of a
// full cache) it converts in place to the EchoKV cache: every token so far is handed to a new
// EchoCache (keys un-rotated to before RoPE, exactly what attention appended), which keeps
// what the plan keeps outside sink + recent, and the full cache is released. Nothing is
// recomputed; the conversion happens at the start of the forward that would pass the budget,
// before any of its tokens is stored, so the cache afterwards holds what an EchoCache used from
// the start holds (up to float rounding of the un-rotation).
#pragma once
#include <functional>
#include <memory>

#include "cache/full_cache.h"
#include "echo/echo_cache.h"

namespace echokv {

class SwitchingEchoCache : public KVCache {
 public:
  // switch_above_tokens: the full cache holds at most this many tokens; `make_full` and
  // `make_echo` build the (empty) caches: the first now (and after a reset that follows a
  // switch), the second at the conversion.
  SwitchingEchoCache(std::function<std::unique_ptr<FullCache>()> make_full, int64_t switch_above_tokens,
                     std::function<std::unique_ptr<EchoCache>()> make_echo, std::shared_ptr<const Rope> rope);

  int64_t next_position() const override { return active().next_position(); }
  void append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v, const torch::Tensor& positions) override;
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override;
  void advance(int64_t tokens) override;
  int64_t bytes() const override { return active().bytes(); }
  int64_t full_bytes() const override { return active().full_bytes(); }
  void reset() override;

  bool switched() const { return echo_ != nullptr; }
  int64_t switched_at() const { return switched_at_; }  // tokens held at the conversion (-1: not yet)
  EchoCache* echo() { return echo_.get(); }

 private:
  const KVCache& active() const { return echo_ ? static_cast<const KVCache&>(*echo_) : *full_; }
  KVCache& active() { return echo_ ? static_cast<KVCache&>(*echo_) : *full_; }
  void convert();

  std::function<std::unique_ptr<FullCache>()> make_full_;
  std::function<std::unique_ptr<EchoCache>()> make_echo_;
  std::unique_ptr<FullCache> full_;
  std::unique_ptr<EchoCache> echo_;
  int64_t limit_;
  std::shared_ptr<const Rope> rope_;
  int64_t switched_at_ = -1;
};

}  // namespace echokv
