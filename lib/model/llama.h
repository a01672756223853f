// Llama / Mistral decoder (HF LlamaForCausalLM semantics): embedding, pre-norm blocks with
// fp32 RMSNorm, GQA attention with rotate_half RoPE through the KVCache seam, SwiGLU MLP,
// final norm and a tied or untied head. Module names follow HF tensor names.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cache/kv_cache.h"
#include "model/attention.h"
#include "model/config.h"
#include "model/rope.h"

namespace echokv {

struct LayerWeights {
  torch::Tensor input_layernorm;           // [H]
  torch::Tensor q_proj;                    // [Hq*D, H]
  torch::Tensor k_proj;                    // [Hkv*D, H]
  torch::Tensor v_proj;                    // [Hkv*D, H]
  torch::Tensor o_proj;                    // [H, Hq*D]
  torch::Tensor post_attention_layernorm;  // [H]
  torch::Tensor gate_proj;                 // [I, H]
  torch::Tensor up_proj;                   // [I, H]
  torch::Tensor down_proj;                 // [H, I]
};

// A tensor of an HF Llama/Mistral checkpoint: its name, the shape a config implies, and
// whether it is an RMSNorm scale (initialised to ones) rather than a projection.
struct HfTensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool is_norm = false;
};
// Every tensor a config implies, in checkpoint order (embedding, layers, norm, lm_head
// unless tied). The one list: loading, validation, saving and random models read it.
std::vector<HfTensorSpec> hf_tensor_specs(const ModelConfig& config);

struct LoadOptions {
  std::string device = "cpu";
  std::string dtype = "float32";  // compute dtype: float32 | bfloat16 | float16 (GPU)
};

// Sees each layer's projections during a forward (head analysis, training targets).
class LayerObserver {
 public:
  virtual ~LayerObserver() = default;
  // q_pre_rope: [B, Hq, T, D]; k_pre_rope, v: [B, Hkv, T, D]; positions: [T].
  virtual void on_qkv(int layer, const torch::Tensor& q_pre_rope, const torch::Tensor& k_pre_rope,
                      const torch::Tensor& v, const torch::Tensor& positions) {}
};

struct ForwardOptions {
  bool last_only = false;             // logits of the last position only: [B, 1, V]
  LayerObserver* observer = nullptr;
};

class LlamaModel {
 public:
  // Loads `dir` (config.json + safetensors); validates names and shapes against the config.
  static std::shared_ptr<LlamaModel> load(const std::string& dir, const LoadOptions& options = {});
  // Builds from named HF tensors (any dtype/device; converted). Used for random models.
  static std::shared_ptr<LlamaModel> from_tensors(const ModelConfig& config,
                                                  const std::map<std::string, torch::Tensor>& tensors,
                                                  torch::Device device, torch::ScalarType dtype,
                                                  const std::string& source = "<memory>");

  const ModelConfig& config() const { return config_; }
  torch::Device device() const { return device_; }
  torch::ScalarType dtype() const { return dtype_; }
  std::shared_ptr<const Rope> rope() const { return rope_; }
  const std::string& source() const { return source_; }

  // ids: [B, T] int64. Appends to `cache`, returns float32 logits [B, T, V] (or [B, 1, V]).
  torch::Tensor forward(const torch::Tensor& ids, KVCache& cache, const ForwardOptions& options = {});

  // Building blocks, public for trainers and analysis.
  torch::Tensor embed(const torch::Tensor& ids) const;                        // [B,T] -> [B,T,H]
  torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight) const;
  // One decoder layer: h [B,T,H] -> [B,T,H].
  torch::Tensor layer_forward(int layer, const torch::Tensor& h, const QueryPositions& qpos, KVCache& cache,
                              LayerObserver* observer = nullptr);
  torch::Tensor mlp(int layer, const torch::Tensor& x) const;
  torch::Tensor head(const torch::Tensor& h) const;                           // [B,T,H] -> f32 [B,T,V]
  // q, k, v before RoPE from the layer's normed input x [B,T,H]: [B,H*,T,D] each.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> project_qkv(int layer, const torch::Tensor& x) const;
  AttentionOptions attention_options() const;

  const LayerWeights& layer(int i) const { return layers_[i]; }
  const torch::Tensor& embed_tokens() const { return embed_tokens_; }
  const torch::Tensor& lm_head() const { return lm_head_; }
  const torch::Tensor& final_norm() const { return norm_; }
  // All weights under their HF names (lm_head omitted when tied).
  std::vector<std::pair<std::string, torch::Tensor>> named_tensors() const;
  int64_t parameter_count() const;

 private:
  LlamaModel() = default;
  ModelConfig config_;
  torch::Device device_{torch::kCPU};
  torch::ScalarType dtype_ = torch::kFloat32;
  std::string source_;
  std::shared_ptr<const Rope> rope_;
  torch::Tensor embed_tokens_;  // [V, H]
  std::vector<LayerWeights> layers_;
  torch::Tensor norm_;          // [H]
  torch::Tensor lm_head_;       // [V, H] (the embedding when tied)
};

// Query positions start..start+T-1 on `device`.
QueryPositions make_query_positions(int64_t start, int64_t count, torch::Device device);

}  // namespace echokv
