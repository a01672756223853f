// What EchoKV's two training stages measure, on one teacher-forced sequence of the frozen
// base model:
//   stage 1, KV-MSE: ||C_drop_hat - C_drop||^2 per compressed (layer, kind), tokens after the
//            sinks (every token is compressed once it leaves the recent window);
//   stage 2, O-MSE: ||A(Q, K, V) - A(Q, K~, V~)||^2 per layer with the layer's own Q and the
//            true hidden states (one layer at a time: no whole-model graph). As at inference,
//            for a query at i the sink tokens (j < sink) and its recent window (i - j < recent)
//            are exact; older keys/values are rebuilt. RoPE is applied after reconstruction.
// Means over elements (torch MSELoss); a model-level loss is the sum over layers.
#pragma once
#include <functional>
#include <map>
#include <vector>

#include <torch/torch.h>

#include "echo/reconstructor.h"
#include "model/llama.h"

namespace echokv {

// A frozen model's per-layer projections on one sequence (no grad).
struct TeacherSequence {
  std::vector<torch::Tensor> q;            // per layer [1, Hq, T, D] before RoPE
  std::vector<torch::Tensor> k_features;   // per layer [T, F] before RoPE
  std::vector<torch::Tensor> v_features;   // per layer [T, F]
  torch::Tensor positions;                 // [T] int64
  const std::vector<torch::Tensor>& features(KVKind kind) const { return kind == KVKind::Key ? k_features : v_features; }
};

TeacherSequence run_teacher(LlamaModel& model, const std::vector<int64_t>& ids);

// Rebuilds the dropped features of (layer, kind) from a teacher sequence: [T, out].
using RebuildFn = std::function<torch::Tensor(int layer, KVKind kind, const TeacherSequence& t)>;
RebuildFn trained_rebuild(const Reconstructor& r);
RebuildFn zeros_rebuild(const Reconstructor& r);        // baseline: dropped features = 0
RebuildFn copy_global_rebuild(const Reconstructor& r);  // baseline: the source layer's same features

// Stage-1 loss of one compressed (layer, kind), tokens at positions >= sink.
torch::Tensor kv_mse(const Reconstructor& r, const RebuildFn& rebuild, int layer, KVKind kind,
                     const TeacherSequence& t, int64_t sink);

// Stage-2 loss of one layer (any of its kinds compressed).
torch::Tensor output_mse(const LlamaModel& model, const Reconstructor& r, const RebuildFn& rebuild, int layer,
                         const TeacherSequence& t, int64_t sink, int64_t recent);

// Attention where, for query i, key j is exact when j < sink or i - j <= recent and rebuilt
// otherwise. q [B, Hq, T, D] with RoPE; k/v exact and rebuilt [B, Hkv, T, D] (keys with RoPE).
torch::Tensor attention_with_exact_window(const torch::Tensor& q, const torch::Tensor& k_exact,
                                          const torch::Tensor& v_exact, const torch::Tensor& k_rebuilt,
                                          const torch::Tensor& v_rebuilt, int64_t sink, int64_t recent, double scale,
                                          std::optional<int64_t> sliding_window);

// Sets every map to the ridge least-squares solution (with intercept when the reconstructor
// has a bias) of stage 1's objective over the given teacher sequences, tokens >= sink:
// W = (X^T X + lambda I)^-1 X^T Y accumulated in float64, lambda = ridge * mean(diag X^T X).
void least_squares_init(Reconstructor& r, const std::vector<TeacherSequence>& sequences, int64_t sink, double ridge);

// [T, F] <-> [1, Hkv, T, D]
torch::Tensor features_to_heads(const torch::Tensor& features, int64_t heads);
torch::Tensor heads_to_features(const torch::Tensor& heads);

}  // namespace echokv
