#include "compress/snapkv.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace echokv {

std::vector<torch::Tensor> snapkv_keep(const FullCache& cache, const std::vector<torch::Tensor>& window_q,
                                       double scale, const SnapKVOptions& o) {
  if (!(o.ratio >= 0 && o.ratio <= 1)) throw Error("SnapKV: ratio must be in [0, 1]");
  const int64_t capacity = std::llround(o.ratio * static_cast<double>(cache.next_position()));
  return snapkv_keep_per_layer(cache, window_q, scale, o.kernel, std::vector<int64_t>(window_q.size(), capacity));
}

std::vector<torch::Tensor> snapkv_keep_per_layer(const FullCache& cache, const std::vector<torch::Tensor>& window_q,
                                                 double scale, int64_t kernel, const std::vector<int64_t>& capacities) {
  if (kernel < 1 || kernel % 2 == 0) throw Error("SnapKV: kernel must be odd and >= 1");
  if (capacities.size() != window_q.size()) throw Error("SnapKV: one capacity per layer");
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> keep;
  const int64_t n = cache.next_position();
  for (size_t l = 0; l < window_q.size(); ++l) {
    auto k = cache.keys(static_cast<int>(l))[0].to(torch::kFloat32);  // [Hkv, n, D]
    auto q = window_q[l][0].to(torch::kFloat32);                        // [Hq, w, D]
    const int64_t hkv = k.size(0), w = q.size(1), g = q.size(0) / hkv;
    const int64_t capacity = capacities[l];
    if (capacity >= n || w >= n) {
      keep.push_back(torch::ones({hkv, n}, torch::kBool));
      continue;
    }
    auto logits = torch::matmul(q.reshape({hkv, g * w, q.size(2)}), k.transpose(1, 2)).mul_(scale).view({hkv, g, w, n});
    // Window query i sits at position n - w + i and sees keys <= that position.
    auto qpos = torch::arange(n - w, n, torch::kInt64).unsqueeze(1);
    auto kpos = torch::arange(n, torch::kInt64).unsqueeze(0);
    logits.masked_fill_((kpos > qpos).to(logits.device()), -std::numeric_limits<float>::infinity());
    auto attn = torch::softmax(logits, -1);
    auto votes = attn.narrow(3, 0, n - w).sum(2);  // [Hkv, G, n - w]
    auto pooled = torch::avg_pool1d(votes, {kernel}, {1}, {kernel / 2});  // count_include_pad, as F.avg_pool1d
    auto score = pooled.mean(1);                                           // [Hkv, n - w]
    auto m = torch::zeros({hkv, n}, torch::kBool);
    m.narrow(1, n - w, w).fill_(true);
    const int64_t take = std::min<int64_t>(std::max<int64_t>(0, capacity - w), n - w);
    if (take > 0) m.narrow(1, 0, n - w).scatter_(1, std::get<1>(score.topk(take, 1)).cpu(), true);
    keep.push_back(m);
  }
  return keep;
}

}  // namespace echokv
