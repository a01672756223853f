#include "model/train_forward.h"

#include <limits>
#include <map>
#include <tuple>

#include "core/torch_compat.h"

namespace echokv {

namespace {

// Additive mask [G*T, T] (0 where a query may attend, -inf elsewhere), cached per shape.
torch::Tensor additive_causal_mask(int64_t t, int64_t g, std::optional<int64_t> window, const torch::TensorOptions& opt) {
  thread_local std::map<std::tuple<int64_t, int64_t, int64_t, int, std::string>, torch::Tensor> cache;
  const auto key = std::make_tuple(t, g, window.value_or(-1), static_cast<int>(c10::typeMetaToScalarType(opt.dtype())),
                                   opt.device().str());
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto pos = torch::arange(t, torch::TensorOptions().dtype(torch::kInt64).device(opt.device()));
  auto allowed = pos.unsqueeze(0) <= pos.unsqueeze(1);  // [Tq, Tk]
  if (window) allowed = allowed & ((pos.unsqueeze(1) - pos.unsqueeze(0)) < *window);
  auto mask = torch::zeros({t, t}, opt).masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
  mask = mask.repeat({g, 1}).unsqueeze(0);  // [1, G*T, T]
  if (cache.size() > 16) cache.clear();
  cache[key] = mask;
  return mask;
}

// The fused kernel (LibTorch >= 2.1; its CPU flash kernel has a backward): KV heads repeated
// to the query heads in HF's repeat_kv order (q head h reads KV head h / G).
torch::Tensor fused_causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale,
                                     std::optional<int64_t> window) {
  const int64_t g = q.size(1) / k.size(1), t = q.size(2);
  auto kk = g == 1 ? k : k.repeat_interleave(g, 1);  // [B, Hq, T, D]
  auto vv = g == 1 ? v : v.repeat_interleave(g, 1);
  if (!window) return compat::fused_attention(q, kk, vv, {}, /*causal=*/true, scale);
  auto pos = torch::arange(t, torch::TensorOptions().dtype(torch::kInt64).device(q.device()));
  auto allowed = (pos.unsqueeze(0) <= pos.unsqueeze(1)) & ((pos.unsqueeze(1) - pos.unsqueeze(0)) < *window);  // [T, T]
  return compat::fused_attention(q, kk, vv, allowed, /*causal=*/false, scale);
}

}  // namespace

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale,
                               std::optional<int64_t> sliding_window) {
  if (compat::fused_attention_pays(q)) return fused_causal_attention(q, k, v, scale, sliding_window);
  const int64_t b = q.size(0), hq = q.size(1), t = q.size(2), d = q.size(3), hkv = k.size(1), g = hq / hkv;
  // Queries of one KV head's group stacked: [B*Hkv, G*T, D] against [B*Hkv, T, D].
  auto qg = (q * scale).reshape({b * hkv, g * t, d});
  auto kk = k.reshape({b * hkv, t, d});
  auto vv = v.reshape({b * hkv, t, d});
  auto mask = additive_causal_mask(t, g, sliding_window, q.options());
  auto scores = torch::baddbmm(mask, qg, kk.transpose(1, 2));  // mask + q k^T, one pass
  auto probs = torch::softmax(scores, -1, torch::kFloat32).to(q.scalar_type());
  return torch::bmm(probs, vv).view({b, hq, t, d});
}

torch::Tensor training_logits(const LlamaModel& model, const torch::Tensor& ids) {
  const auto& c = model.config();
  const int64_t b = ids.size(0), t = ids.size(1);
  auto positions = torch::arange(t, torch::TensorOptions().dtype(torch::kInt64).device(model.device()));
  const auto opt = model.attention_options();
  auto h = model.embed(ids);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const auto& w = model.layer(static_cast<int>(l));
    auto x = model.rms_norm(h, w.input_layernorm);
    auto [q, k, v] = model.project_qkv(static_cast<int>(l), x);
    q = model.rope()->apply(q, positions);
    k = model.rope()->apply(k, positions);
    auto attn = causal_attention(q, k, v, opt.scale, opt.sliding_window);
    h = h + torch::linear(attn.transpose(1, 2).reshape({b, t, c.q_dim()}), w.o_proj);
    h = h + model.mlp(static_cast<int>(l), model.rms_norm(h, w.post_attention_layernorm));
  }
  return model.head(h);
}

}  // namespace echokv
