#include "compress/expected_attention.h"

#include "core/error.h"
#include "model/rope.h"

namespace echokv {

torch::Tensor average_rope_rotation(const Rope& rope, int64_t start, int64_t count) {
  auto [cos, sin] = rope.cos_sin(torch::arange(start, start + count, torch::kInt64));  // [count, D]
  cos = cos.to(torch::kCPU, torch::kFloat64).mean(0);
  sin = sin.to(torch::kCPU, torch::kFloat64).mean(0);
  const int64_t d = cos.size(0), h = d / 2;
  // rotate_half(x) = P x with P = [[0, -I], [I, 0]]; R_p = diag(cos_p) + P diag(sin_p). The mean
  // of R_p is linear in cos_p and sin_p.
  auto P = torch::zeros({d, d}, torch::kFloat64);
  P.narrow(0, 0, h).narrow(1, h, h).copy_(-torch::eye(h, torch::kFloat64));
  P.narrow(0, h, h).narrow(1, 0, h).copy_(torch::eye(h, torch::kFloat64));
  return torch::diag(cos) + P * sin.unsqueeze(0);
}

torch::Tensor expected_attention_scores(const torch::Tensor& mean, const torch::Tensor& cov, const torch::Tensor& keys,
                                        const torch::Tensor& values, double scale, const ExpectedAttentionOptions& o) {
  const int64_t hq = mean.size(0), hkv = keys.size(0), n = keys.size(1), g = hq / hkv, s = o.sinks;
  if (n <= s) return torch::ones({hkv, n}, torch::kFloat32);  // only sinks: nothing to rank
  auto k = keys.to(torch::kCPU, torch::kFloat64).narrow(1, s, n - s);                       // [Hkv, n-s, D]
  auto kq = k.repeat_interleave(g, 0);                                                       // [Hq, n-s, D]
  auto z = torch::matmul(kq, mean.unsqueeze(-1)).squeeze(-1).mul_(scale);                  // [Hq, n-s]
  if (o.covariance) z += (torch::matmul(kq, cov) * kq).sum(-1).mul_(scale * scale / 2.0);
  auto attn = torch::softmax(z, -1).view({hkv, g, n - s}).mean(1);                          // [Hkv, n-s]
  if (o.value_norm) attn = (attn + o.epsilon) * values.to(torch::kCPU, torch::kFloat64).narrow(1, s, n - s).norm(2, -1);
  auto out = torch::empty({hkv, n}, torch::kFloat64);
  out.narrow(1, s, n - s).copy_(attn);
  out.narrow(1, 0, s).fill_(attn.max().item<double>() + 1.0);
  return out.to(torch::kFloat32);
}

ExpectedAttentionObserver::ExpectedAttentionObserver(const LlamaModel& model, const FullCache& cache, int64_t tokens,
                                                     ExpectedAttentionOptions o)
    : model_(model), cache_(cache), tokens_(tokens), o_(o) {
  const auto& c = model.config();
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    sum_.push_back(torch::zeros({c.num_attention_heads, c.head_dim}, torch::kFloat64));
    outer_.push_back(torch::zeros({c.num_attention_heads, c.head_dim, c.head_dim}, torch::kFloat64));
    count_.push_back(0);
  }
}

void ExpectedAttentionObserver::on_qkv(int layer, const torch::Tensor& q_pre, const torch::Tensor&, const torch::Tensor&,
                                       const torch::Tensor& positions) {
  auto pos = positions.to(torch::kCPU);
  const int64_t first = pos[0].item<int64_t>(), c = pos.size(0);
  const int64_t skip = std::min(c, std::max<int64_t>(0, o_.sinks - first));  // queries of sink positions are left out
  if (skip == c) return;
  auto q = q_pre[0].narrow(1, skip, c - skip).to(torch::kCPU, torch::kFloat64);  // [Hq, c', D]
  sum_[layer] += q.sum(1);
  outer_[layer] += torch::matmul(q.transpose(1, 2), q);
  count_[layer] += c - skip;
}

std::vector<torch::Tensor> ExpectedAttentionObserver::take_scores() {
  const auto rotation = average_rope_rotation(*model_.rope(), tokens_, o_.future);  // [D, D]
  const double scale = model_.attention_options().scale;
  std::vector<torch::Tensor> out;
  for (size_t l = 0; l < sum_.size(); ++l) {
    const int64_t n = cache_.keys(static_cast<int>(l)).size(2);
    if (n != tokens_) throw Error("ExpectedAttention: the prefill did not reach the announced length");
    if (count_[l] == 0) {  // every token is a sink
      out.push_back(torch::ones({cache_.keys(static_cast<int>(l)).size(1), n}, torch::kFloat32));
      continue;
    }
    auto mu = sum_[l] / double(count_[l]);                                              // [Hq, D]
    auto cov = outer_[l] / double(count_[l]) - mu.unsqueeze(2) * mu.unsqueeze(1);        // [Hq, D, D]
    mu = torch::matmul(mu, rotation.t());
    cov = torch::matmul(torch::matmul(rotation, cov), rotation.t());
    out.push_back(expected_attention_scores(mu, cov, cache_.keys(static_cast<int>(l))[0], cache_.values(static_cast<int>(l))[0],
                                            scale, o_));
  }
  sum_.clear();
  outer_.clear();
  return out;
}

}  // namespace echokv
