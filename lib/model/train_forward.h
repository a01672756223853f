// Differentiable full-sequence forward for training: the same building blocks as inference
// (embedding, RMSNorm, projections, RoPE, SwiGLU, head) with plain causal attention instead
// of the KV cache. Gradients flow to whichever weights require them.
#pragma once
#include <torch/torch.h>

#include "model/llama.h"

namespace echokv {

// q: [B, Hq, T, D], k, v: [B, Hkv, T, D] (RoPE applied) -> [B, Hq, T, D]; causal, GQA. The
// fused kernel where LibTorch has one (core/torch_compat.h), else baddbmm + softmax + bmm.
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double scale,
                               std::optional<int64_t> sliding_window = std::nullopt);

// ids [B, T] -> logits [B, T, V] float32, building the autograd graph.
torch::Tensor training_logits(const LlamaModel& model, const torch::Tensor& ids);

}  // namespace echokv
