#include "compress/kvzip_eviction.h"

#include <limits>

#include "core/error.h"

namespace echokv {

std::vector<torch::Tensor> kvzip_keep_pairs(const std::vector<torch::Tensor>& scores, double ratio, bool uniform) {
  if (!(ratio >= 0 && ratio <= 1)) throw Error("KVzip: ratio must be in [0, 1]");
  std::vector<torch::Tensor> keep;
  if (scores.empty()) return keep;
  if (uniform) {
    for (const auto& s : scores) {
      const int64_t n = s.size(1), k = static_cast<int64_t>(static_cast<double>(n) * ratio);
      auto m = torch::zeros(s.sizes(), torch::kBool);
      if (k > 0) m.scatter_(1, std::get<1>(s.topk(k, 1)), true);
      keep.push_back(m);
    }
    return keep;
  }
  std::vector<torch::Tensor> flat;
  for (const auto& s : scores) flat.push_back(s.reshape({-1}).to(torch::kFloat32));
  auto all = torch::cat(flat);
  const int64_t N = all.numel(), k = static_cast<int64_t>(static_cast<double>(N) * ratio);
  // KVzip's _threshold: below ratio 1, keep the scores strictly above the k-th largest
  // (k = int(N * ratio); k - 1 pairs when scores are distinct, fewer on ties).
  torch::Tensor m;
  if (ratio >= 1 || N == 0) {
    m = torch::ones({N}, torch::kBool);
  } else {
    const auto sorted = std::get<0>(all.sort(0, /*descending=*/true));
    const float threshold = sorted[std::max<int64_t>(k - 1, 0)].item<float>();
    m = all.gt(threshold);
  }
  int64_t at = 0;
  for (const auto& s : scores) {
    keep.push_back(m.narrow(0, at, s.numel()).view(s.sizes()).clone());
    at += s.numel();
  }
  return keep;
}

std::vector<torch::Tensor> kvzip_head_scores(const std::vector<torch::Tensor>& pair_scores) {
  std::vector<torch::Tensor> out;
  for (const auto& s : pair_scores)
    out.push_back(s.size(1) > 0 ? std::get<0>(s.to(torch::kFloat32).max(1)) : torch::zeros({s.size(0)}));
  return out;
}

void kvzip_merge_head_scores(std::vector<torch::Tensor>& into, const std::vector<torch::Tensor>& more) {
  if (into.empty()) {
    for (const auto& m : more) into.push_back(m.clone());
    return;
  }
  if (into.size() != more.size()) throw Error("KVzip head scores: calibration runs disagree on the layer count");
  for (size_t l = 0; l < into.size(); ++l) into[l] = torch::maximum(into[l], more[l]);
}

std::vector<torch::Tensor> kvzip_keep_heads(const std::vector<torch::Tensor>& head_scores, double ratio, int64_t n) {
  std::vector<torch::Tensor> as_pairs;  // one "pair" per head: the global threshold is the same rule
  for (const auto& h : head_scores) as_pairs.push_back(h.view({-1, 1}));
  auto heads = kvzip_keep_pairs(as_pairs, ratio, false);
  std::vector<torch::Tensor> keep;
  for (const auto& k : heads) keep.push_back(k.expand({k.size(0), n}).clone());
  return keep;
}

namespace {

// Per evicted (layer, KV head, token) pair a full cache frees K and V of head_dim elements.
int64_t evicted_pair_bytes(const KVCache& full, int64_t, const std::vector<torch::Tensor>& keep) {
  if (full.next_position() == 0) return 0;
  int64_t evicted = 0, pairs = 0;
  for (const auto& k : keep) {
    evicted += k.numel() - k.sum().item<int64_t>();
    pairs += k.size(0);
  }
  return evicted * (full.bytes() / (full.next_position() * pairs));
}

}  // namespace

MaskedFullCache::MaskedFullCache(std::unique_ptr<FullCache> base) : TokenMaskCache(std::move(base), evicted_pair_bytes) {}

}  // namespace echokv
