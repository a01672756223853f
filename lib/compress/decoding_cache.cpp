#include "compress/decoding_cache.h"

#include "cache/cache_factory.h"
#include "compress/token_budgets.h"
#include "core/error.h"

namespace echokv {

DecodingCompressionCache::DecodingCompressionCache(const LlamaModel& model, DecodingCompressionOptions o)
    : o_(o), layers_(model.config().num_hidden_layers), kv_heads_(model.config().num_key_value_heads) {
  if (!o_.scorer || !o_.scorer->from_states) throw Error("decoding compression needs a scorer of stored keys and values");
  if (o_.interval < 1 || o_.target < 1) throw Error("decoding compression: interval and target must be >= 1");
  auto empty = make_full_cache(model, 1);
  std::vector<torch::Tensor> none(static_cast<size_t>(layers_), torch::ones({kv_heads_, 0}, torch::kBool));
  store_ = std::make_unique<CompactedCache>(*empty, model.rope(), 0, none);
}

void DecodingCompressionCache::advance(int64_t tokens) {
  store_->advance(tokens);
  if (tokens != 1) return;  // prompt chunks are not decoding steps
  if (++steps_ < o_.interval) return;
  steps_ = 0;
  compress();
}

void DecodingCompressionCache::compress() {
  std::vector<torch::Tensor> keep;
  bool any = false;
  for (int l = 0; l < layers_; ++l) {
    const int64_t len = store_->head_length(l, 0);
    if (len <= o_.target) {
      keep.push_back(torch::ones({kv_heads_, len}, torch::kBool));
      continue;
    }
    std::vector<torch::Tensor> k, v;
    for (int64_t h = 0; h < kv_heads_; ++h) {
      if (store_->head_length(l, h) != len) throw Error("decoding compression: heads hold different numbers of tokens");
      k.push_back(store_->head_keys(l, h)[0]);    // [len, D]
      v.push_back(store_->head_values(l, h)[0]);
    }
    auto scores = o_.scorer->from_states(torch::stack(k), torch::stack(v), o_.seed, l);  // [Hkv, len]
    keep.push_back(keep_top_per_head(scores, o_.target));
    any = true;
  }
  if (!any) return;
  store_->retain(keep);
  ++compressions_;
}

void DecodingCompressionCache::reset() {
  store_->reset();
  steps_ = 0;
  compressions_ = 0;
}

}  // namespace echokv
