#include "model/attention.h"

#include <atomic>
#include <limits>
#include <vector>

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

// Flash attention's running softmax over key blocks, per query row: row_max = the largest
// score so far, row_sum = sum_j exp(s_j - row_max), out = sum_j exp(s_j - row_max) v_j.
// Rows that have seen only masked keys keep row_max = -inf and are shifted by 0 (no inf - inf).
// Out-of-place, so trainers can run autograd through it.
struct SoftmaxState {
  torch::Tensor out;      // [B, h, R, D] float32; undefined before the first block
  torch::Tensor row_max;  // [B, h, R, 1]
  torch::Tensor row_sum;  // [B, h, R, 1]
};

// One more block: scores [B, h, R, n] float32 (masked = -inf); weighted(p) = p times the
// block's values, [B, h, R, D] float32.
SoftmaxState online_softmax_step(const SoftmaxState& s, const torch::Tensor& scores,
                                 const std::function<torch::Tensor(const torch::Tensor&)>& weighted) {
  auto block_max = std::get<0>(scores.max(-1, true));
  auto new_max = s.row_max.defined() ? torch::maximum(s.row_max, block_max) : block_max;
  auto shift = torch::where(torch::isinf(new_max), torch::zeros_like(new_max), new_max);
  auto p = torch::exp(scores - shift);
  auto pv = weighted(p);
  if (!s.out.defined()) return {pv, new_max, p.sum(-1, true)};
  // exp(-inf - shift) = 0: a row's earlier sums vanish while it had seen only masked keys.
  auto correction = torch::exp(s.row_max - shift);
  return {s.out * correction + pv, new_max, s.row_sum * correction + p.sum(-1, true)};
}

// Which KVBlock field combinations attention implements; anything else is a cache bug.
void check_block(const KVBlock& block) {
  if (block.head < 0) return;
  TORCH_CHECK(!block.v_latent.defined(), "attention: a per-head block (KVBlock::head >= 0) cannot carry latent values (v_latent)");
  TORCH_CHECK(!block.is_only, "attention: a per-head block (KVBlock::head >= 0) cannot be the layer's only block");
  TORCH_CHECK(block.kv_heads > 0 && block.head < block.kv_heads && block.k.size(1) == 1,
              "attention: a per-head block needs 0 <= head < kv_heads and k of shape [B, 1, n, D]");
}

}  // namespace

torch::Tensor attend_blocks(const torch::Tensor& q, const QueryPositions& qpos,
                            const std::function<void(const std::function<void(const KVBlock&)>&)>& blocks,
                            const AttentionOptions& opt) {
  const int64_t b = q.size(0), hq = q.size(1), tq = q.size(2), d = q.size(3);
  torch::Tensor qg;         // [B, Hkv, G*Tq, D]
  torch::Tensor qg_scaled;  // qg * scale
  int64_t hkv = 0, g = 0;
  int per_head_layout = -1;             // 1: the layer's blocks are per KV head, 0: full width
  SoftmaxState whole;                   // full-width blocks: [B, Hkv, G*Tq, .]
  std::vector<SoftmaxState> per_head;   // per-head blocks: one [B, 1, G*Tq, .] state per KV head
  torch::Tensor single_result;

  blocks([&](const KVBlock& block) {
    check_block(block);
    if (block.k.size(2) == 0 || block_fully_outside_window(qpos, block, opt)) return;
    const int layout = block.head >= 0 ? 1 : 0;
    TORCH_CHECK(per_head_layout < 0 || per_head_layout == layout,
                "attention: a layer mixes per-head and full-width KV blocks");
    if (!qg.defined()) {
      per_head_layout = layout;
      hkv = block.head >= 0 ? block.kv_heads : block.k.size(1);
      g = hq / hkv;
      // q heads h = kv*G + j (HF repeat_kv order), so a view groups each KV head's queries.
      qg = q.contiguous().view({b, hkv, g * tq, d});
      qg_scaled = qg * opt.scale;
      if (layout == 1) per_head.resize(static_cast<size_t>(hkv));
    }
    torch::Tensor allowed = block_mask(qpos, block, opt);
    if (block.head < 0 && block.is_only && opt.fused && compat::fused_attention_pays(q) && !block.bias.defined() &&
        !block.v_latent.defined()) {
      torch::Tensor mask;
      if (allowed.defined()) mask = allowed.repeat({g, 1});  // [G*Tq, n]
      single_result = compat::fused_attention(qg, block.k.to(q.scalar_type()), block.v.to(q.scalar_type()), mask,
                                              /*causal=*/false, opt.scale);
      fused_calls.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    // Scale q (small) rather than the scores: one less pass over [G*Tq, n], and the same
    // rounding order as the float32 reference within its 1e-4.
    auto qb = block.head >= 0 ? qg_scaled.narrow(1, block.head, 1) : qg_scaled;  // [B, h, G*Tq, D]
    auto scores = torch::matmul(qb, block.k.to(q.scalar_type()).transpose(-1, -2)).to(torch::kFloat32);
    if (block.bias.defined()) scores.add_(block.bias.to(torch::kFloat32));
    if (allowed.defined())
      scores.view({b, scores.size(1), g, tq, scores.size(-1)}).masked_fill_(allowed.logical_not(),
                                                                             -std::numeric_limits<float>::infinity());
    if (block.is_only) {
      auto probs = torch::softmax(scores, -1).to(q.scalar_type());
      single_result = weighted_values(probs, block);
      return;
    }
    auto weighted = [&](const torch::Tensor& p) { return weighted_values(p.to(q.scalar_type()), block).to(torch::kFloat32); };
    SoftmaxState& state = block.head >= 0 ? per_head[static_cast<size_t>(block.head)] : whole;
    state = online_softmax_step(state, scores, weighted);
  });

  if (single_result.defined()) return single_result.view({b, hq, tq, d});
  if (per_head_layout == 1) {
    std::vector<torch::Tensor> heads;
    for (const auto& s : per_head)  // a head that kept no token attends to nothing: zeros
      heads.push_back(s.out.defined() ? s.out / s.row_sum
                                      : torch::zeros({b, 1, g * tq, d}, q.options().dtype(torch::kFloat32)));
    return torch::cat(heads, 1).to(q.scalar_type()).view({b, hq, tq, d});
  }
  if (!whole.out.defined()) return torch::zeros_like(q);
  return (whole.out / whole.row_sum).to(q.scalar_type()).view({b, hq, tq, d});
}

int64_t fused_attention_calls() { return fused_calls.load(std::memory_order_relaxed); }

torch::Tensor attend(const torch::Tensor& q, const QueryPositions& qpos, KVCache& cache, int layer,
                     const AttentionOptions& options) {
  return attend_blocks(
      q, qpos, [&](const std::function<void(const KVBlock&)>& visit) { cache.for_each_block(layer, visit); },
      options);
}

}  // namespace echokv
