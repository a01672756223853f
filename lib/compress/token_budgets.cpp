#include "compress/token_budgets.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace echokv {

torch::Tensor keep_top_per_head(const torch::Tensor& scores, int64_t keep) {
  const int64_t m = scores.size(1);
  auto mask = torch::zeros(scores.sizes(), torch::kBool);
  keep = std::min(std::max<int64_t>(keep, 0), m);
  if (keep > 0) mask.scatter_(1, std::get<1>(scores.topk(keep, 1)), true);
  return mask;
}

torch::Tensor keep_head_adaptive(const torch::Tensor& scores, int64_t keep, double alpha) {
  if (!(alpha >= 0 && alpha <= 1)) throw Error("AdaKV: alpha_safeguard must be in [0, 1]");
  const int64_t hkv = scores.size(0), m = scores.size(1);
  keep = std::min(std::max<int64_t>(keep, 0), m);
  auto s = scores.to(torch::kFloat32).clone();
  const int64_t safe = static_cast<int64_t>(std::floor(double(keep) * alpha + 1e-9));
  if (safe > 0) s.scatter_(1, std::get<1>(s.topk(safe, 1)), std::numeric_limits<float>::max());
  auto mask = torch::zeros({hkv * m}, torch::kBool);
  if (keep > 0) mask.index_fill_(0, std::get<1>(s.view({-1}).topk(hkv * keep)), true);
  return mask.view({hkv, m});
}

torch::Tensor keep_top_chunks(const torch::Tensor& scores, double kept_fraction, int64_t chunk) {
  if (chunk < 1) throw Error("ChunkKV: chunk_length must be >= 1");
  const int64_t hkv = scores.size(0), m = scores.size(1);
  const int64_t chunks = (m + chunk - 1) / chunk;
  auto summed = scores.to(torch::kFloat32).sum(0);  // [m]
  auto chunk_scores = torch::empty({chunks}, torch::kFloat32);
  for (int64_t c = 0; c < chunks; ++c)
    chunk_scores[c] = summed.narrow(0, c * chunk, std::min(chunk, m - c * chunk)).mean();
  const int64_t kept = std::min<int64_t>(chunks, std::max<int64_t>(1, int64_t(std::floor(double(chunks) * kept_fraction + 1e-9))));
  auto mask = torch::zeros({m}, torch::kBool);
  auto top = std::get<1>(chunk_scores.topk(kept));
  for (int64_t i = 0; i < kept; ++i) {
    const int64_t c = top[i].item<int64_t>();
    mask.narrow(0, c * chunk, std::min(chunk, m - c * chunk)).fill_(true);
  }
  return mask.unsqueeze(0).expand({hkv, m}).contiguous();
}

std::vector<int64_t> pyramid_layer_budgets(int layers, int64_t n, double kept_fraction, int64_t window, double beta) {
  if (beta < 1) throw Error("PyramidKV: beta must be >= 1");
  const auto uniform = static_cast<int64_t>(std::nearbyint(double(n) * kept_fraction));  // Python round()
  std::vector<int64_t> out(static_cast<size_t>(layers), uniform);
  const double max_capacity = double(window) + double(n) * kept_fraction;
  double min_num = (max_capacity - double(window)) / beta;
  double max_num = (max_capacity - double(window)) * 2 - min_num;
  if (max_num >= double(n - window)) {
    max_num = double(n - window);
    min_num = (max_capacity - double(window)) * 2 - max_num;
  }
  if (!(double(n) >= max_num && max_num >= min_num && min_num >= double(window)) || layers < 2) return out;
  const double steps = (max_num - min_num) / double(layers - 1);
  // Python's round(): half to even.
  for (int l = 0; l < layers; ++l) out[l] = static_cast<int64_t>(std::nearbyint(max_num - double(l) * steps));
  return out;
}

}  // namespace echokv
