#include "model/attention.h"

#include <atomic>
#include <limits>

#include "core/torch_compat.h"

namespace echokv {

namespace {

std::atomic<int64_t> fused_calls{0};

// Boolean [Tq, n] "may attend" mask, or undefined when every pair is allowed.
torch::Tensor block_mask(const QueryPositions& qpos, const KVBlock& block, const AttentionOptions& opt) {
  const bool causal_needed = block.max_position > qpos.min_position;
  const bool window_needed = opt.sliding_window && qpos.max_position - block.min_position >= *opt.sliding_window;
  if (!causal_needed && !window_needed) return {};
  auto qp = qpos.positions.unsqueeze(1);   // [Tq, 1]
  auto kp = block.positions.unsqueeze(0);  // [1, n]
  torch::Tensor allowed = kp <= qp;
  if (window_needed) allowed = allowed & ((qp - kp) < *opt.sliding_window);
  return allowed;
}

bool block_fully_outside_window(const QueryPositions& qpos, const KVBlock& block, const AttentionOptions& opt) {
  return opt.sliding_window && block.max_position <= qpos.min_position - *opt.sliding_window;
}

// probs [B, Hkv, R, n] times the block's values -> [B, Hkv, R, D] (in probs' dtype).
torch::Tensor weighted_values(const torch::Tensor& probs, const KVBlock& block) {
  if (!block.v_latent.defined()) return torch::matmul(probs, block.v.to(probs.scalar_type()));
  auto u = torch::matmul(probs, block.v_latent.to(probs.scalar_type()).unsqueeze(1));          // [B, Hkv, R, L]
  auto out = torch::matmul(u, block.v_proj.to(probs.scalar_type()).transpose(-1, -2));        // [B, Hkv, R, D]
  if (block.v_bias.defined())
    out = out + probs.sum(-1, true) * block.v_bias.to(probs.scalar_type()).unsqueeze(1);     // [Hkv, 1, D]
  return out;
}

}  // namespace

torch::Tensor attend_blocks(const torch::Tensor& q, const QueryPositions& qpos,
                            const std::function<void(const std::function<void(const KVBlock&)>&)>& blocks,
                            const AttentionOptions& opt) {
  const int64_t b = q.size(0), hq = q.size(1), tq = q.size(2), d = q.size(3);
  torch::Tensor out;          // [B, Hkv, G*Tq, D] float32 accumulator (online softmax)
  torch::Tensor row_max;      // [B, Hkv, G*Tq, 1]
  torch::Tensor row_sum;      // [B, Hkv, G*Tq, 1]
  torch::Tensor qg;           // [B, Hkv, G*Tq, D]
  torch::Tensor qg_scaled;    // qg * scale
  int64_t hkv = 0, g = 0;
  torch::Tensor single_result;

  blocks([&](const KVBlock& block) {
    if (block.k.size(2) == 0 || block_fully_outside_window(qpos, block, opt)) return;
    if (!qg.defined()) {
      hkv = block.head >= 0 ? block.kv_heads : block.k.size(1);
      g = hq / hkv;
      // q heads h = kv*G + j (HF repeat_kv order), so a view groups each KV head's queries.
      qg = q.contiguous().view({b, hkv, g * tq, d});
      qg_scaled = qg * opt.scale;
    }
    torch::Tensor allowed = block_mask(qpos, block, opt);
    if (block.head >= 0) {  // one KV head's tokens: update that head's slice of the accumulators
      if (!out.defined()) {
        out = torch::zeros({b, hkv, g * tq, d}, q.options().dtype(torch::kFloat32));
        row_max = torch::full({b, hkv, g * tq, 1}, -std::numeric_limits<float>::infinity(), out.options());
        row_sum = torch::zeros({b, hkv, g * tq, 1}, out.options());
      }
      auto qh = qg_scaled.narrow(1, block.head, 1);  // [B, 1, G*Tq, D]
      auto scores = torch::matmul(qh, block.k.to(q.scalar_type()).transpose(-1, -2)).to(torch::kFloat32);
      if (block.bias.defined()) scores.add_(block.bias.to(torch::kFloat32));
      if (allowed.defined())
        scores.view({b, 1, g, tq, scores.size(-1)}).masked_fill_(allowed.logical_not(), -std::numeric_limits<float>::infinity());
      auto om = row_max.narrow(1, block.head, 1), os = row_sum.narrow(1, block.head, 1), oo = out.narrow(1, block.head, 1);
      auto new_max = torch::maximum(om, std::get<0>(scores.max(-1, true)));
      auto shift = torch::where(torch::isinf(new_max), torch::zeros_like(new_max), new_max);
      auto p = torch::exp(scores - shift);
      auto pv = torch::matmul(p.to(q.scalar_type()), block.v.to(q.scalar_type())).to(torch::kFloat32);
      auto old_shift = torch::where(torch::isinf(om), torch::zeros_like(om), om);
      auto correction = torch::where(torch::isinf(om), torch::zeros_like(om), torch::exp(old_shift - shift));
      oo.copy_(oo * correction + pv);
      os.copy_(os * correction + p.sum(-1, true));
      om.copy_(new_max);
      return;
    }
    if (opt.fused && compat::fused_attention_pays(q) && block.is_only && !block.bias.defined() && !block.v_latent.defined()) {
      torch::Tensor mask;
      if (allowed.defined()) mask = allowed.repeat({g, 1});  // [G*Tq, n]
      single_result = compat::fused_attention(qg, block.k.to(q.scalar_type()), block.v.to(q.scalar_type()), mask,
                                              /*causal=*/false, opt.scale);
      fused_calls.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    // Scale q (small) rather than the scores: one less pass over [G*Tq, n], and the same
    // rounding order as the float32 reference within its 1e-4.
    auto scores = torch::matmul(qg_scaled, block.k.to(q.scalar_type()).transpose(-1, -2)).to(torch::kFloat32);
    if (block.bias.defined()) scores.add_(block.bias.to(torch::kFloat32));
    if (allowed.defined()) {
      auto s5 = scores.view({b, hkv, g, tq, scores.size(-1)});
      s5.masked_fill_(allowed.logical_not(), -std::numeric_limits<float>::infinity());
    }
    if (block.is_only) {
      auto probs = torch::softmax(scores, -1).to(q.scalar_type());
      single_result = weighted_values(probs, block);
      return;
    }
    auto block_max = std::get<0>(scores.max(-1, true));
    torch::Tensor new_max = row_max.defined() ? torch::maximum(row_max, block_max) : block_max;
    // Rows with every key masked so far keep -inf; shift by 0 there to avoid inf - inf.
    auto shift = torch::where(torch::isinf(new_max), torch::zeros_like(new_max), new_max);
    auto p = torch::exp(scores - shift);
    auto pv = weighted_values(p.to(q.scalar_type()), block).to(torch::kFloat32);
    if (!out.defined()) {
      out = pv;
      row_sum = p.sum(-1, true);
    } else {
      auto old_shift = torch::where(torch::isinf(row_max), torch::zeros_like(row_max), row_max);
      auto correction = torch::exp(old_shift - shift);
      correction = torch::where(torch::isinf(row_max), torch::zeros_like(correction), correction);
      out = out * correction + pv;
      row_sum = row_sum * correction + p.sum(-1, true);
    }
    row_max = new_max;
  });

  if (single_result.defined()) return single_result.view({b, hq, tq, d});
  if (!out.defined()) return torch::zeros_like(q);
  return (out / row_sum).to(q.scalar_type()).view({b, hq, tq, d});
}

int64_t fused_attention_calls() { return fused_calls.load(std::memory_order_relaxed); }

torch::Tensor attend(const torch::Tensor& q, const QueryPositions& qpos, KVCache& cache, int layer,
                     const AttentionOptions& options) {
  return attend_blocks(
      q, qpos, [&](const std::function<void(const KVBlock&)>& visit) { cache.for_each_block(layer, visit); },
      options);
}

}  // namespace echokv
