#include "compress/kvzip_scoring.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace echokv {
namespace {

// Captures each layer's repeat-token queries/keys and scores the chunk's pairs.
class ScoringObserver : public LayerObserver {
 public:
  ScoringObserver(const LlamaModel& model, FullCache& cache, int64_t prefix_len, int64_t chunk_begin, int64_t chunk_end,
                  std::vector<torch::Tensor>& scores, int64_t context_begin)
      : model_(model), cache_(cache), prefix_(prefix_len), c0_(chunk_begin), c1_(chunk_end), scores_(scores),
        context_begin_(context_begin) {}

  void on_qkv(int layer, const torch::Tensor& q_pre, const torch::Tensor& k_pre, const torch::Tensor&,
              const torch::Tensor& positions) override {
    const auto& cfg = model_.config();
    const int64_t G = cfg.gqa_group(), D = cfg.head_dim, R = q_pre.size(2);
    auto q = model_.rope()->apply(q_pre, positions).to(torch::kFloat32);           // [1, Hq, R, D]
    auto k_rep = model_.rope()->apply(k_pre, positions).to(torch::kFloat32);       // [1, Hkv, R, D]
    auto keys = cache_.keys(layer).to(torch::kFloat32);                            // [1, Hkv, n, D] (before this forward's append)
    auto k_sink = keys.narrow(2, 0, prefix_);
    auto k_chunk = keys.narrow(2, context_begin_ + c0_, c1_ - c0_);
    auto k_all = torch::cat({k_sink, k_chunk, k_rep}, 2);                          // [1, Hkv, S+C+R, D]
    // Query heads h = kv*G + j (HF repeat_kv order): a view stacks each KV head's group.
    auto qg = q.reshape({1, cfg.num_key_value_heads, G * R, D});                   // [1, Hkv, G*R, D]
    auto logits = torch::matmul(qg, k_all.transpose(-1, -2)) / std::sqrt(static_cast<double>(D));  // [1, Hkv, G*R, S+C+R]
    const int64_t SC = prefix_ + (c1_ - c0_);
    auto causal = torch::ones({R, R}, torch::kBool).triu(1);                       // j > i masked
    auto mask = torch::cat({torch::zeros({R, SC}, torch::kBool), causal}, 1).repeat({G, 1}).to(logits.device());
    logits.masked_fill_(mask, -std::numeric_limits<float>::infinity());
    auto probs = torch::softmax(logits, -1).narrow(-1, prefix_, c1_ - c0_);       // [1, Hkv, G*R, C]
    // Max over the repeat queries and the GQA group at once.
    auto per_kv = std::get<0>(probs.max(2))[0];                                    // [Hkv, C]
    scores_[layer].narrow(1, c0_, c1_ - c0_).copy_(per_kv.to(torch::kCPU));
  }

 private:
  const LlamaModel& model_;
  FullCache& cache_;
  int64_t prefix_, c0_, c1_;
  std::vector<torch::Tensor>& scores_;
  int64_t context_begin_;
};

}  // namespace

KvzipPrompts kvzip_prompts(const Tokenizer& tokenizer, const std::vector<int64_t>& postfix_ids) {
  KvzipPrompts p;
  p.first = tokenizer.encode("\n\nRepeat the previous context exactly.", false);
  p.later = tokenizer.encode("\n\nRepeat the part of the previous context exactly, starting with ", false);
  p.postfix = postfix_ids;
  return p;
}

std::vector<torch::Tensor> kvzip_scores(LlamaModel& model, FullCache& cache, int64_t prefix_len,
                                        const std::vector<int64_t>& context_ids, const KvzipPrompts& prompts) {
  const int64_t n = static_cast<int64_t>(context_ids.size());
  const int64_t total = prefix_len + n;
  if (cache.next_position() != total)
    throw Error("kvzip_scores: the cache must hold exactly the prefix and the context (" + std::to_string(total) +
                " tokens), it holds " + std::to_string(cache.next_position()));
  if (prompts.chunk_tokens <= 0 || prompts.overlap_tokens < 0) throw Error("kvzip_scores: bad chunk/overlap");
  const auto& cfg = model.config();
  std::vector<torch::Tensor> scores;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) scores.push_back(torch::zeros({cfg.num_key_value_heads, n}));
  torch::NoGradGuard no_grad;
  for (int64_t c0 = 0; c0 < n; c0 += prompts.chunk_tokens) {
    const int64_t c1 = std::min(n, c0 + prompts.chunk_tokens);
    std::vector<int64_t> ids = c0 == 0 ? prompts.first : prompts.later;
    if (c0 > 0) {
      const int64_t from = std::max<int64_t>(0, c0 - prompts.overlap_tokens);
      ids.insert(ids.end(), context_ids.begin() + from, context_ids.begin() + c0);
    }
    ids.insert(ids.end(), prompts.postfix.begin(), prompts.postfix.end());
    ids.insert(ids.end(), context_ids.begin() + c0, context_ids.begin() + c1);
    ScoringObserver observer(model, cache, prefix_len, c0, c1, scores, prefix_len);
    ForwardOptions fo;
    fo.last_only = true;
    fo.observer = &observer;
    auto input = torch::tensor(ids, torch::kInt64).unsqueeze(0);
    model.forward(input, cache, fo);
    cache.truncate(total);
  }
  return scores;
}

}  // namespace echokv
