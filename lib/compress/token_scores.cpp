#include "compress/token_scores.h"

#include <algorithm>
#include <limits>
#include <random>

#include "compress/expected_attention.h"
#include "core/error.h"

namespace echokv {

torch::Tensor knorm_scores(const torch::Tensor& keys) {
  return keys.to(torch::kCPU, torch::kFloat32).norm(2, -1).neg();
}

torch::Tensor keydiff_scores(const torch::Tensor& keys) {
  auto k = keys.to(torch::kCPU, torch::kFloat32);                                  // [Hkv, m, D]
  auto unit = k / k.norm(2, -1, true).clamp_min(1e-12);                            // F.normalize's eps
  auto anchor = unit.mean(1, true);                                                // [Hkv, 1, D]
  auto cos = (k * anchor).sum(-1) / (k.norm(2, -1) * anchor.norm(2, -1)).clamp_min(1e-8);  // F.cosine_similarity
  return cos.neg();
}

torch::Tensor random_scores(int64_t kv_heads, int64_t tokens, uint64_t seed, int layer) {
  std::mt19937_64 rng(seed * 1000003ULL + static_cast<uint64_t>(layer));
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  auto out = torch::empty({kv_heads, tokens}, torch::kFloat32);
  float* p = out.data_ptr<float>();
  for (int64_t i = 0; i < kv_heads * tokens; ++i) p[i] = uniform(rng);
  return out;
}

torch::Tensor tova_scores(const torch::Tensor& query, const torch::Tensor& keys, double scale, int64_t begin) {
  const int64_t hq = query.size(0), hkv = keys.size(0), n = keys.size(1), g = hq / hkv;
  if (begin < 0 || begin >= n) throw Error("TOVA: empty range");
  auto q = query.to(torch::kCPU, torch::kFloat32).view({hkv, g, query.size(1)});
  auto k = keys.to(torch::kCPU, torch::kFloat32);
  auto attn = torch::softmax(torch::matmul(q, k.transpose(1, 2)).mul_(scale), -1);  // [Hkv, G, n]
  auto mean = attn.reshape({hq, n}).mean(0);                                         // [n] over every query head
  auto scores = mean.narrow(0, begin, n - begin).clone();
  scores[n - begin - 1] = scores.max().item<float>() + 1.0f;  // the query's own token stays
  return scores.unsqueeze(0).expand({hkv, n - begin}).contiguous();
}

torch::Tensor snapkv_window_scores(const torch::Tensor& queries, const torch::Tensor& keys, double scale, int64_t kernel,
                                   int64_t begin) {
  const int64_t hq = queries.size(0), w = queries.size(1), hkv = keys.size(0), n = keys.size(1), g = hq / hkv;
  if (n - begin <= w) throw Error("SnapKV scorer: the range must be longer than the window");
  auto q = queries.to(torch::kCPU, torch::kFloat32).reshape({hkv, g * w, queries.size(2)});
  auto k = keys.to(torch::kCPU, torch::kFloat32);
  auto logits = torch::matmul(q, k.transpose(1, 2)).mul_(scale).view({hkv, g, w, n});
  auto qpos = torch::arange(n - w, n, torch::kInt64).unsqueeze(1);
  auto kpos = torch::arange(n, torch::kInt64).unsqueeze(0);
  logits.masked_fill_(kpos > qpos, -std::numeric_limits<float>::infinity());
  auto attn = torch::softmax(logits, -1).narrow(3, 0, n - w).mean(2);                 // [Hkv, G, n - w]
  auto pooled = torch::avg_pool1d(attn, {kernel}, {1}, {kernel / 2}).mean(1);         // [Hkv, n - w]
  auto scores = torch::empty({hkv, n - begin}, torch::kFloat32);
  scores.narrow(1, 0, n - w - begin).copy_(pooled.narrow(1, begin, n - w - begin));
  scores.narrow(1, n - w - begin, w).fill_(pooled.max().item<float>() + 1.0f);
  return scores;
}

ObservedAttentionObserver::ObservedAttentionObserver(const LlamaModel& model, const FullCache& cache, int64_t tokens)
    : model_(model), cache_(cache), tokens_(tokens) {
  for (int l = 0; l < model.config().num_hidden_layers; ++l)
    sums_.push_back(torch::zeros({model.config().num_key_value_heads, tokens}, torch::kFloat32));
}

void ObservedAttentionObserver::on_qkv(int layer, const torch::Tensor& q_pre, const torch::Tensor& k_pre,
                                       const torch::Tensor&, const torch::Tensor& positions) {
  // Called before the chunk is appended: the cache holds positions 0 .. p0-1.
  const auto& rope = *model_.rope();
  const int64_t hkv = k_pre.size(1), hq = q_pre.size(1), g = hq / hkv, c = q_pre.size(2), d = q_pre.size(3);
  const int64_t p0 = cache_.keys(layer).size(2), n = p0 + c;
  if (n > tokens_) throw Error("ObservedAttention: more tokens than announced");
  auto q = rope.apply(q_pre, positions)[0].to(torch::kFloat32);                         // [Hq, c, D]
  auto k_new = rope.apply(k_pre, positions)[0].to(torch::kFloat32);                     // [Hkv, c, D]
  auto k = torch::cat({cache_.keys(layer)[0].to(torch::kFloat32), k_new}, 1);           // [Hkv, n, D]
  const double scale = model_.attention_options().scale;
  // Query rows in blocks so that [Hkv, G, rows, n] stays near 2^24 elements.
  const int64_t rows = std::max<int64_t>(1, (int64_t(1) << 24) / std::max<int64_t>(1, hq * n));
  auto sum = torch::zeros({hkv, n}, torch::kFloat32).to(k.device());
  for (int64_t r0 = 0; r0 < c; r0 += rows) {
    const int64_t r = std::min(rows, c - r0);
    auto qb = q.narrow(1, r0, r).reshape({hkv, g * r, d});
    auto logits = torch::matmul(qb, k.transpose(1, 2)).mul_(scale).view({hkv, g, r, n});
    auto qpos = torch::arange(p0 + r0, p0 + r0 + r, torch::kInt64).unsqueeze(1);
    auto kpos = torch::arange(n, torch::kInt64).unsqueeze(0);
    logits.masked_fill_((kpos > qpos).to(logits.device()), -std::numeric_limits<float>::infinity());
    sum += torch::softmax(logits, -1).sum({1, 2});
  }
  sums_[layer].narrow(1, 0, n).add_(sum.to(torch::kCPU));
}

std::vector<torch::Tensor> ObservedAttentionObserver::take_scores() {
  const int64_t g = model_.config().gqa_group();
  auto seen_by = torch::arange(tokens_, 0, -1, torch::kFloat32).mul_(static_cast<double>(g));  // G x (n - j)
  std::vector<torch::Tensor> out;
  for (auto& s : sums_) out.push_back(s / seen_by);
  sums_.clear();
  return out;
}

torch::Tensor projected_value_l1_norms(const torch::Tensor& values, const torch::Tensor& o_proj) {
  const int64_t hkv = values.size(0), m = values.size(1), d = values.size(2), hq = o_proj.size(1) / d;
  const int64_t g = hq / hkv;
  auto wo = o_proj.to(values.device(), torch::kFloat32).t().reshape({hq, d, o_proj.size(0)});  // [Hq, D, H]
  auto v = values.to(torch::kFloat32);
  auto out = torch::zeros({hkv, m}, torch::kFloat32);
  for (int64_t h = 0; h < hq; ++h)  // one head at a time: [m, H] at most
    out[h / g] += torch::matmul(v[h / g], wo[h]).abs().sum(-1).to(torch::kCPU);
  return out.div_(double(g));
}

torch::Tensor critical_scores(const torch::Tensor& scores, const torch::Tensor& norms, int64_t first_stage, double epsilon) {
  auto out = (scores.to(torch::kFloat32) + epsilon) * norms.to(torch::kFloat32);
  if (first_stage > 0) {
    auto top = std::get<1>(scores.topk(std::min(first_stage, scores.size(1)), -1));
    out.scatter_(1, top, std::numeric_limits<float>::max());
  }
  return out;
}

namespace {

// One state tensor [Hkv, P*lag, D] cut into P partitions: partition p (< P-1) normalised by the
// min and max over tokens of partition p+1, per channel; std over channels (unbiased, as
// torch.std), softmax over the partition's tokens -> [Hkv, P-1, lag].
torch::Tensor lag_relative_scores(const torch::Tensor& states, int64_t lag) {
  const int64_t hkv = states.size(0), parts = states.size(1) / lag, d = states.size(2);
  auto x = states.to(torch::kCPU, torch::kFloat32).view({hkv, parts, lag, d});
  auto ref = x.narrow(1, 1, parts - 1), cur = x.narrow(1, 0, parts - 1);
  auto lo = std::get<0>(ref.min(2, true)), hi = std::get<0>(ref.max(2, true));  // [Hkv, P-1, 1, D]
  return ((cur - lo) / (hi - lo)).std(-1, /*unbiased=*/true).softmax(-1);
}

}  // namespace

torch::Tensor lagkv_scores(const torch::Tensor& keys, const torch::Tensor& values, int64_t sinks, int64_t lag) {
  const int64_t hkv = keys.size(0), n = keys.size(1);
  auto out = torch::ones({hkv, n}, torch::kFloat32);
  if (n < sinks + 2 * lag) {
    if (n > sinks) out.narrow(1, sinks, n - sinks).copy_(torch::arange(n - sinks, torch::kFloat32).div_(double(n - sinks)));
    return out;
  }
  const int64_t end = sinks + ((n - sinks) / lag) * lag;  // the last full partition ends here
  auto k = lag_relative_scores(keys.narrow(1, sinks, end - sinks), lag);
  auto v = lag_relative_scores(values.narrow(1, sinks, end - sinks), lag);
  auto both = (k + v) / 2;                                                     // [Hkv, P-1, lag]
  auto order = both.argsort(-1, /*descending=*/false);
  auto rank = order.argsort(-1, /*descending=*/false).to(torch::kFloat32).div_(double(lag));  // 0 .. (lag-1)/lag
  out.narrow(1, sinks, end - lag - sinks).copy_(rank.reshape({hkv, -1}));
  return out;
}

namespace {

torch::Tensor range_keys(const ScoringInputs& in, int layer) {
  return in.cache->keys(layer)[0].narrow(1, in.begin, in.end - in.begin);  // [Hkv, m, D]
}

// kAllQueries scorers: the observer scored tokens 0..end-1; the range's part.
torch::Tensor observed_range(int layer, const ScoringInputs& in) {
  return (*in.observed)[layer].narrow(1, in.begin, in.end - in.begin).clone();
}

}  // namespace

const std::vector<TokenScorer>& token_scorers() {
  static const std::vector<TokenScorer> scorers = {
      {"knorm", ScorerNeeds::kKeys, [](int l, const ScoringInputs& in) { return knorm_scores(range_keys(in, l)); }, 0, {},
       [](const torch::Tensor& k, const torch::Tensor&, uint64_t, int) { return knorm_scores(k); }},
      {"random", ScorerNeeds::kKeys,
       [](int l, const ScoringInputs& in) {
         return random_scores(in.cache->keys(l).size(1), in.end - in.begin, in.seed, l);
       },
       0, {},
       [](const torch::Tensor& k, const torch::Tensor&, uint64_t seed, int l) { return random_scores(k.size(0), k.size(1), seed, l); }},
      {"keydiff", ScorerNeeds::kKeys, [](int l, const ScoringInputs& in) { return keydiff_scores(range_keys(in, l)); }, 0, {},
       [](const torch::Tensor& k, const torch::Tensor&, uint64_t, int) { return keydiff_scores(k); }},
      {"tova", ScorerNeeds::kWindowQueries,
       [](int l, const ScoringInputs& in) {
         auto q = (*in.window_queries)[l][0].select(1, -1);  // [Hq, D] of token end-1
         return tova_scores(q, in.cache->keys(l)[0].narrow(1, 0, in.end), in.scale, in.begin);
       },
       1, {}, {}},
      {"snapkv", ScorerNeeds::kWindowQueries,
       [](int l, const ScoringInputs& in) {
         return snapkv_window_scores((*in.window_queries)[l][0], in.cache->keys(l)[0].narrow(1, 0, in.end), in.scale,
                                     /*kernel=*/5, in.begin);
       },
       64, {}, {}},
      {"observed_attention", ScorerNeeds::kAllQueries, observed_range, 0,
       [](const LlamaModel& model, const FullCache& cache, int64_t n, const ScorerSettings&) -> std::unique_ptr<PromptScoreObserver> {
         return std::make_unique<ObservedAttentionObserver>(model, cache, n);
       },
       {}},
      {"expected_attention", ScorerNeeds::kAllQueries, observed_range, 0,
       [](const LlamaModel& model, const FullCache& cache, int64_t n, const ScorerSettings& s) -> std::unique_ptr<PromptScoreObserver> {
         return std::make_unique<ExpectedAttentionObserver>(model, cache, n, s.expected_attention);
       },
       {}},
      {"lagkv", ScorerNeeds::kKeys,
       [](int l, const ScoringInputs& in) {
         auto all = lagkv_scores(in.cache->keys(l)[0].narrow(1, 0, in.end), in.cache->values(l)[0].narrow(1, 0, in.end),
                                 /*sinks=*/4, /*lag=*/128);
         return all.narrow(1, in.begin, in.end - in.begin).clone();
       },
       0, {},
       [](const torch::Tensor& k, const torch::Tensor& v, uint64_t, int) { return lagkv_scores(k, v, /*sinks=*/4, /*lag=*/128); }},
  };
  return scorers;
}

const TokenScorer* find_token_scorer(const std::string& name) {
  for (const auto& s : token_scorers())
    if (s.name == name) return &s;
  return nullptr;
}

std::string token_scorer_names() {
  std::string out;
  for (const auto& s : token_scorers()) out += (out.empty() ? "" : ", ") + s.name;
  return out;
}

}  // namespace echokv
