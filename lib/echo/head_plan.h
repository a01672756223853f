// HeadPlan: which parts of the KV cache EchoKV keeps and which it rebuilds, and from what.
// For every layer and for K and V separately, a layer is either
//   - global:     stored whole (all Hkv*D features of every token), or
//   - compressed: only `kept` feature ranges of its flattened [Hkv*D] per-token vector are
//                 stored; the rest ("dropped", in feature order) is rebuilt per token by a
//                 linear map from concat(full features of each source layer, kept features).
// Sources must be global for the same kind (K from K, V from V) and come before the layer.
// The plan's byte ratio (stored / full, K and V together, long-context limit without sink
// and recent tokens) is exact.
// File format (JSON, validated strictly on load; unknown keys are errors):
//   {"format": "echokv-head-plan/1", "strategy": "paper", "target_ratio": 0.5,
//    "ratio": 0.5, "shape": {"num_layers": 32, "num_kv_heads": 8, "head_dim": 128},
//    "layers": [{"layer": 0, "k": {"role": "global"}, "v": {"role": "global"}},
//               {"layer": 1, "k": {"role": "compressed", "kept": [[0, 384]], "sources": [0]},
//                            "v": {...}}, ...],
//    "notes": "..."}
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace echokv {

enum class KVKind { Key = 0, Value = 1 };
const char* kv_kind_name(KVKind kind);  // "k" | "v"

struct FeatureRange {
  int64_t begin = 0;  // [begin, end) in the flattened [Hkv*D] vector
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  bool operator==(const FeatureRange& o) const { return begin == o.begin && end == o.end; }
};

struct LayerKindPlan {
  bool global = true;
  std::vector<FeatureRange> kept;  // sorted, disjoint; empty for global layers
  std::vector<int> sources;        // global layers (same kind) feeding the reconstructor

  int64_t kept_features() const;
  // Complement of `kept` in [0, features): the rebuilt part, in feature order.
  std::vector<FeatureRange> dropped(int64_t features) const;
};

struct ModelConfig;

struct PlanShape {
  int64_t num_layers = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t features() const { return num_kv_heads * head_dim; }
  static PlanShape of(const ModelConfig& model);  // the model's layers x KV heads x head dim
  bool operator==(const PlanShape& o) const {
    return num_layers == o.num_layers && num_kv_heads == o.num_kv_heads && head_dim == o.head_dim;
  }
  bool operator!=(const PlanShape& o) const { return !(*this == o); }
  std::string text() const;  // "8 layers x 3 KV heads x 32"
};

struct HeadPlan {
  PlanShape shape;
  std::string strategy;          // "paper", "similarity", "full", or anything a user names
  double target_ratio = 1.0;
  std::string notes;
  std::vector<LayerKindPlan> k;  // per layer
  std::vector<LayerKindPlan> v;

  const LayerKindPlan& at(int layer, KVKind kind) const { return kind == KVKind::Key ? k[layer] : v[layer]; }
  LayerKindPlan& at(int layer, KVKind kind) { return kind == KVKind::Key ? k[layer] : v[layer]; }

  // Features stored per token, K and V together, and the full count 2*L*Hkv*D.
  int64_t stored_features() const;
  int64_t full_features() const { return 2 * shape.num_layers * shape.features(); }
  double ratio() const { return double(stored_features()) / double(full_features()); }
  // Reconstructor sizes of one compressed (layer, kind): inputs = sources * F + kept, outputs = dropped.
  int64_t input_features(int layer, KVKind kind) const;
  int64_t output_features(int layer, KVKind kind) const;
  bool is_full() const;

  // Throws echokv::Error naming `source` on any inconsistency.
  void validate(const std::string& source = "<plan>") const;
  nlohmann::json to_json() const;
  static HeadPlan from_json(const nlohmann::json& j, const std::string& source);
  static HeadPlan load(const std::string& path);
  void save(const std::string& path) const;  // atomic

  // Every layer global (ratio 1).
  static HeadPlan full(const PlanShape& shape);
  // The paper's layout: groups of `group_size` consecutive layers, the first global, the others
  // keep their first `local_features` features and are rebuilt from the group's first layer.
  static HeadPlan paper(const PlanShape& shape, int group_size, int64_t local_features);
  // The paper's layout for a target ratio: the smallest S >= 2 with 1/S <= ratio, and the
  // largest D_local (a multiple of `granularity` features) that keeps the ratio <= target.
  static HeadPlan paper_for_ratio(const PlanShape& shape, double target_ratio, int64_t granularity);
};

}  // namespace echokv
