#include "train/echo_objectives.h"

#include <limits>

#include "cache/cache_factory.h"

namespace echokv {

namespace {
struct TeacherObserver : LayerObserver {
  TeacherSequence* out;
  void on_qkv(int layer, const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
              const torch::Tensor& positions) override {
    out->q[layer] = q.detach().to(torch::kFloat32);
    out->k_features[layer] = heads_to_features(k.detach()).to(torch::kFloat32);
    out->v_features[layer] = heads_to_features(v.detach()).to(torch::kFloat32);
  }
};

std::vector<torch::Tensor> source_features(const Reconstructor& r, int layer, KVKind kind, const TeacherSequence& t) {
  std::vector<torch::Tensor> out;
  for (int s : r.plan().at(layer, kind).sources) out.push_back(t.features(kind)[s]);
  return out;
}
}  // namespace

torch::Tensor features_to_heads(const torch::Tensor& features, int64_t heads) {
  const int64_t T = features.size(0), F = features.size(1);
  return features.view({1, T, heads, F / heads}).permute({0, 2, 1, 3});
}

torch::Tensor heads_to_features(const torch::Tensor& x) {
  // [1, Hkv, T, D] -> [T, Hkv*D]
  return x.permute({0, 2, 1, 3}).reshape({x.size(2), x.size(1) * x.size(3)});
}

TeacherSequence run_teacher(LlamaModel& model, const std::vector<int64_t>& ids) {
  torch::NoGradGuard ng;
  const int64_t L = model.config().num_hidden_layers;
  TeacherSequence t;
  t.q.resize(L);
  t.k_features.resize(L);
  t.v_features.resize(L);
  TeacherObserver obs;
  obs.out = &t;
  auto cache = make_full_cache(model, int64_t(ids.size()));
  ForwardOptions fo;
  fo.last_only = true;
  fo.observer = &obs;
  model.forward(torch::tensor(ids, torch::kInt64).view({1, -1}).to(model.device()), *cache, fo);
  t.positions = torch::arange(int64_t(ids.size()), torch::TensorOptions().dtype(torch::kInt64).device(model.device()));
  return t;
}

RebuildFn trained_rebuild(const Reconstructor& r) {
  return [&r](int layer, KVKind kind, const TeacherSequence& t) {
    auto input = r.gather_input(layer, kind, source_features(r, layer, kind, t), t.features(kind)[layer]);
    return r.rebuild(layer, kind, input);
  };
}

RebuildFn zeros_rebuild(const Reconstructor& r) {
  return [&r](int layer, KVKind kind, const TeacherSequence& t) {
    return torch::zeros({t.features(kind)[layer].size(0), r.dropped_index(layer, kind).numel()},
                        t.features(kind)[layer].options());
  };
}

RebuildFn copy_global_rebuild(const Reconstructor& r) {
  return [&r](int layer, KVKind kind, const TeacherSequence& t) -> torch::Tensor {
    const auto& sources = r.plan().at(layer, kind).sources;
    if (sources.empty()) return zeros_rebuild(r)(layer, kind, t);
    return t.features(kind)[sources.front()].index_select(-1, r.dropped_index(layer, kind));
  };
}

void least_squares_init(Reconstructor& r, const std::vector<TeacherSequence>& sequences, int64_t sink, double ridge) {
  torch::NoGradGuard ng;
  std::map<std::string, torch::Tensor> solved;
  const auto& plan = r.plan();
  for (int l = 0; l < plan.shape.num_layers; ++l)
    for (KVKind kind : {KVKind::Key, KVKind::Value}) {
      if (!r.compressed(l, kind)) continue;
      torch::Tensor xtx, xty;
      for (const auto& t : sequences) {
        auto x = r.gather_input(l, kind, source_features(r, l, kind, t), t.features(kind)[l]).slice(0, sink);
        auto y = t.features(kind)[l].index_select(-1, r.dropped_index(l, kind)).slice(0, sink);
        x = x.to(torch::kFloat64);
        if (r.has_bias()) x = torch::cat({x, torch::ones({x.size(0), 1}, x.options())}, 1);
        auto a = x.t().mm(x), b = x.t().mm(y.to(torch::kFloat64));
        xtx = xtx.defined() ? xtx + a : a;
        xty = xty.defined() ? xty + b : b;
      }
      const double lambda = ridge * xtx.diagonal().mean().item<double>() + 1e-12;
      auto w = torch::linalg_solve(xtx + lambda * torch::eye(xtx.size(0), xtx.options()), xty);  // [in(+1), out]
      const std::string name = "layers." + std::to_string(l) + "." + kv_kind_name(kind);
      const int64_t in = plan.input_features(l, kind);
      solved[name + ".weight"] = w.slice(0, 0, in).t().to(torch::kFloat32);
      if (r.has_bias()) solved[name + ".bias"] = w[in].to(torch::kFloat32);
    }
  r.load_tensors(solved, "least-squares initialisation");
}

torch::Tensor kv_mse(const Reconstructor& r, const RebuildFn& rebuild, int layer, KVKind kind,
                     const TeacherSequence& t, int64_t sink) {
  const auto& own = t.features(kind)[layer];
  auto target = own.index_select(-1, r.dropped_index(layer, kind));
  auto pred = rebuild(layer, kind, t);
  const int64_t T = own.size(0);
  return torch::mse_loss(pred.slice(0, std::min(sink, T - 1)), target.slice(0, std::min(sink, T - 1)));
}

torch::Tensor attention_with_exact_window(const torch::Tensor& q, const torch::Tensor& k_exact,
                                          const torch::Tensor& v_exact, const torch::Tensor& k_rebuilt,
                                          const torch::Tensor& v_rebuilt, int64_t sink, int64_t recent, double scale,
                                          std::optional<int64_t> sliding_window) {
  const int64_t B = q.size(0), Hq = q.size(1), T = q.size(2), D = q.size(3), Hkv = k_exact.size(1);
  auto qg = q.view({B, Hkv, Hq / Hkv, T, D});
  auto scores_exact = torch::matmul(qg, k_exact.unsqueeze(2).transpose(-1, -2));     // [B, Hkv, g, T, T]
  auto scores_rebuilt = torch::matmul(qg, k_rebuilt.unsqueeze(2).transpose(-1, -2));
  auto i = torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(q.device())).unsqueeze(1);
  auto j = i.t();
  auto exact = (j < sink) | (i - j <= recent);  // [T, T]: as EchoCache keeps them
  auto visible = j <= i;
  if (sliding_window) visible = visible & (i - j < *sliding_window);
  auto scores = torch::where(exact, scores_exact, scores_rebuilt).to(torch::kFloat32) * scale;
  scores = scores.masked_fill(visible.logical_not(), -std::numeric_limits<float>::infinity());
  auto p = torch::softmax(scores, -1).to(q.scalar_type());
  auto ef = exact.to(p.scalar_type());
  auto out = torch::matmul(p * ef, v_exact.unsqueeze(2)) + torch::matmul(p * (1 - ef), v_rebuilt.unsqueeze(2));
  return out.view({B, Hq, T, D});
}

torch::Tensor output_mse(const LlamaModel& model, const Reconstructor& r, const RebuildFn& rebuild, int layer,
                         const TeacherSequence& t, int64_t sink, int64_t recent) {
  const auto& rope = *model.rope();
  const int64_t Hkv = model.config().num_key_value_heads;
  auto q = rope.apply(t.q[layer], t.positions);
  torch::Tensor kv[2][2];  // [kind][exact, rebuilt] heads, keys with RoPE
  for (KVKind kind : {KVKind::Key, KVKind::Value}) {
    const auto& own = t.features(kind)[layer];
    auto rebuilt = r.compressed(layer, kind) ? r.assemble(layer, kind, own, rebuild(layer, kind, t)) : own;
    auto exact_h = features_to_heads(own, Hkv), rebuilt_h = features_to_heads(rebuilt, Hkv);
    if (kind == KVKind::Key) {
      exact_h = rope.apply(exact_h, t.positions);
      rebuilt_h = rope.apply(rebuilt_h, t.positions);
    }
    kv[int(kind)][0] = exact_h;
    kv[int(kind)][1] = rebuilt_h;
  }
  const auto opts = model.attention_options();
  torch::Tensor target;
  {
    torch::NoGradGuard ng;
    target = attention_with_exact_window(q, kv[0][0], kv[1][0], kv[0][0], kv[1][0], sink, recent, opts.scale,
                                         opts.sliding_window);
  }
  auto out = attention_with_exact_window(q, kv[0][0], kv[1][0], kv[0][1], kv[1][1], sink, recent, opts.scale,
                                         opts.sliding_window);
  return torch::mse_loss(out, target);
}

}  // namespace echokv
