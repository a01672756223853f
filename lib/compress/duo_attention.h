// DuoAttention with on-the-fly head scores (Xiao et al. 2024, "DuoAttention: Efficient
// Long-Context LLM Inference with Retrieval and Streaming Heads"; kvpress's
// DuoAttentionPress(on_the_fly_scoring=True), its "experimental" replacement for the trained
// patterns, which exist for six checkpoints only):
//   per calibration sample and layer, the mean pre-RoPE query q_bar [Hq, D] and key k_bar
//   [Hkv, D] over the sample's tokens; both repeated at positions 0 .. L-1 (L = 500) with
//   RoPE; the last query's softmax attention over the L keys; its cumulative sum averaged
//   over the L keys (the area under the cumulated-attention curve), averaged over the GQA
//   group and over samples -> a score per (layer, KV head). Low scores (attention on the
//   recent end) mark streaming heads.
// A streaming head keeps only the first `sink` and the last `recent` tokens of the prompt up
// to the context's end (kvpress: 128 and 256 on the fly); retrieval heads keep everything.
#pragma once
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "model/llama.h"

namespace echokv {

// samples: token ids of each calibration text. Returns float32 [layers, Hkv].
torch::Tensor duo_attention_head_scores(LlamaModel& model, const std::vector<std::vector<int64_t>>& samples,
                                        int64_t pattern_length = 500, int64_t chunk = 512);

// The area score of one layer from its mean pre-RoPE query [Hq, D] and key [Hkv, D]: float32 [Hkv].
torch::Tensor duo_attention_area(const Rope& rope, const torch::Tensor& mean_q, const torch::Tensor& mean_k,
                                 int64_t pattern_length, double scale);

// The `count` lowest-scoring (layer, head) pairs (ties: the lower flat index first): bool [layers, Hkv].
torch::Tensor duo_streaming_heads(const torch::Tensor& scores, int64_t count);

}  // namespace echokv
