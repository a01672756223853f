// EchoKV's reconstructors: for every compressed (layer, kind) of a HeadPlan one linear map
//   C_drop_hat = W . concat(C_source_1, ..., C_kept) + b        (paper Eq. 3)
// per token, keys before RoPE. Features are a layer's flattened [Hkv*D] vector per token.
// Saved as a folder: reconstructors.safetensors ("layers.<l>.<k|v>.weight" [out, in],
// ".bias" [out]), plan.json, echo.json (base model fingerprint, bias, training summary).
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "echo/head_plan.h"

namespace echokv {

class Reconstructor {
 public:
  Reconstructor() = default;
  // Fresh maps, initialised like torch.nn.Linear (uniform +-1/sqrt(in)) from `seed`.
  Reconstructor(const HeadPlan& plan, bool bias, uint64_t seed, torch::Device device = torch::kCPU);

  const HeadPlan& plan() const { return plan_; }
  bool has_bias() const { return bias_; }
  bool compressed(int layer, KVKind kind) const { return !plan_.at(layer, kind).global; }

  // Indices into a layer's [F] features: what a compressed layer keeps and what it drops.
  const torch::Tensor& kept_index(int layer, KVKind kind) const { return index(layer, kind).kept; }
  const torch::Tensor& dropped_index(int layer, KVKind kind) const { return index(layer, kind).dropped; }

  // The map's input from full features of the source layers and the layer's own features
  // (only kept positions are read): [..., F] each -> [..., in].
  torch::Tensor gather_input(int layer, KVKind kind, const std::vector<torch::Tensor>& source_features,
                             const torch::Tensor& own_features) const;
  // [..., in] -> [..., out], in the input's dtype.
  torch::Tensor rebuild(int layer, KVKind kind, const torch::Tensor& input) const;
  // Full [..., F] features: kept positions from `own_features`, dropped ones rebuilt.
  torch::Tensor assemble(int layer, KVKind kind, const torch::Tensor& own_features,
                         const torch::Tensor& rebuilt) const;

  // The layer's whole feature vector as one linear function of the map's input:
  // features = M . input + c, M [F, in] (kept rows select their input entry, dropped rows are
  // W), c [F] (the bias on dropped rows, 0 on kept). Lets attention weight inputs instead of
  // rebuilding values token by token.
  std::pair<torch::Tensor, torch::Tensor> feature_map(int layer, KVKind kind) const;

  std::vector<torch::Tensor> parameters() const;
  std::vector<std::pair<std::string, torch::Tensor>> named_tensors() const;
  void load_tensors(const std::map<std::string, torch::Tensor>& tensors, const std::string& source);
  int64_t parameter_count() const;
  // Moves the maps; a dtype other than float32 is for inference (training keeps float32).
  Reconstructor& to(torch::Device device, torch::ScalarType dtype = torch::kFloat32);

  // Folder I/O. `info` lands in echo.json (base model fingerprint, training summary, ...).
  void save(const std::string& dir, const nlohmann::json& info) const;
  // Loads a folder; when `model_dir` is given, refuses reconstructors trained on another model.
  static Reconstructor load(const std::string& dir, const std::string& model_dir = "");

 private:
  struct Index {
    torch::Tensor kept, dropped;  // int64 [n]
  };
  struct Map {
    torch::Tensor weight;  // [out, in] float32 (inference: the model's dtype)
    torch::Tensor bias;    // [out] or undefined
  };
  const Index& index(int layer, KVKind kind) const { return indices_.at({layer, int(kind)}); }
  void build_indices(torch::Device device);

  HeadPlan plan_;
  bool bias_ = true;
  std::map<std::pair<int, int>, Index> indices_;
  std::map<std::pair<int, int>, Map> maps_;
};

}  // namespace echokv
