// Small random models and helper caches shared by model/cache tests.
#pragma once
#include "cache/full_cache.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "test_support.h"

namespace echokv::testing {

inline ModelConfig tiny_config(const std::string& type = "llama") {
  ModelConfig c;
  c.model_type = type;
  c.vocab_size = 97;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-5;
  c.max_position_embeddings = 512;
  return c;
}

// The first n ids of stories260K's self-sampled sequence `row` (reference fixture).
inline std::vector<int64_t> stories260k_sampled_ids(int64_t row, int64_t n) {
  auto ids = load_safetensors(require_fixture("fixtures/reference/stories260K/expected.safetensors")).at("sampled_ids");
  auto r = ids[row].slice(0, 0, n).contiguous();
  return {r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel()};
}

// Hands `visit` the keys/values [B, H, n, D] in blocks of `block` positions starting at 0.
inline void visit_in_blocks(const torch::Tensor& k, const torch::Tensor& v, int64_t block,
                            const std::function<void(const KVBlock&)>& visit) {
  const int64_t n = k.size(2);
  for (int64_t s = 0; s < n; s += block) {
    const int64_t len = std::min(block, n - s);
    KVBlock b;
    b.k = k.narrow(2, s, len);
    b.v = v.narrow(2, s, len);
    b.positions = torch::arange(s, s + len, torch::kInt64);
    b.min_position = s;
    b.max_position = s + len - 1;
    b.is_only = len == n;
    visit(b);
  }
}

// A cache that stores like FullCache but hands attention its tokens in blocks of `block`
// positions (not flagged is_only), forcing the multi-block online-softmax path.
class BlockSplitCache : public KVCache {
 public:
  BlockSplitCache(std::unique_ptr<FullCache> inner, int64_t block) : inner_(std::move(inner)), block_(block) {}
  int64_t next_position() const override { return inner_->next_position(); }
  void append(int layer, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& pos) override {
    inner_->append(layer, k, v, pos);
  }
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override {
    // Never flagged is_only, even when one block covers everything.
    visit_in_blocks(inner_->keys(layer), inner_->values(layer), block_, [&](const KVBlock& b) {
      KVBlock copy = b;
      copy.is_only = false;
      visit(copy);
    });
  }
  void advance(int64_t t) override { inner_->advance(t); }
  int64_t bytes() const override { return inner_->bytes(); }
  int64_t full_bytes() const override { return inner_->full_bytes(); }
  void reset() override { inner_->reset(); }

 private:
  std::unique_ptr<FullCache> inner_;
  int64_t block_;
};

}  // namespace echokv::testing
