#include "echo/head_plan.h"

#include <type_traits>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "core/files.h"
#include "model/config.h"

namespace echokv {

PlanShape PlanShape::of(const ModelConfig& model) {
  return PlanShape{model.num_hidden_layers, model.num_key_value_heads, model.head_dim};
}

std::string PlanShape::text() const {
  return std::to_string(num_layers) + " layers x " + std::to_string(num_kv_heads) + " KV heads x " +
         std::to_string(head_dim);
}

namespace {
constexpr const char* kFormat = "echokv-head-plan/1";

void require_keys(const nlohmann::json& j, const std::set<std::string>& allowed, const std::string& source,
                  const std::string& where) {
  if (!j.is_object()) fail(source, where + " must be a JSON object");
  for (const auto& item : j.items())
    if (!allowed.count(item.key())) fail(source, "unknown key '" + item.key() + "' in " + where);
}

// Integral fields (and lists of them) hold JSON integers: nlohmann would turn 2.7 into 2 and
// 1e308 into undefined behaviour.
template <typename T>
struct IntegerField : std::bool_constant<std::is_integral_v<T> && !std::is_same_v<T, bool>> {};
template <typename T>
struct IntegerField<std::vector<T>> : IntegerField<T> {};

bool all_integers(const nlohmann::json& v) {
  if (v.is_array()) {
    for (const auto& x : v)
      if (!all_integers(x)) return false;
    return true;
  }
  return v.is_number_integer();
}

template <typename T>
T get_field(const nlohmann::json& j, const std::string& key, const std::string& source, const std::string& where) {
  if (!j.contains(key)) fail(source, "missing key '" + key + "' in " + where);
  if constexpr (IntegerField<T>::value)
    if (!all_integers(j.at(key))) fail(source, "key '" + key + "' in " + where + " must hold integers (" + j.at(key).dump() + ")");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(source, "key '" + key + "' in " + where + " has the wrong type (" + j.at(key).dump() + ")");
  }
}

nlohmann::json kind_to_json(const LayerKindPlan& p) {
  if (p.global) return {{"role", "global"}};
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& r : p.kept) kept.push_back({r.begin, r.end});
  return {{"role", "compressed"}, {"kept", kept}, {"sources", p.sources}};
}

LayerKindPlan kind_from_json(const nlohmann::json& j, const std::string& source, const std::string& where) {
  require_keys(j, {"role", "kept", "sources"}, source, where);
  LayerKindPlan p;
  const auto role = get_field<std::string>(j, "role", source, where);
  if (role == "global") {
    if (j.contains("kept") || j.contains("sources")) fail(source, where + ": a global layer has no 'kept' or 'sources'");
    return p;
  }
  if (role != "compressed") fail(source, where + ": role must be \"global\" or \"compressed\", got \"" + role + "\"");
  p.global = false;
  const auto kept = get_field<std::vector<std::vector<int64_t>>>(j, "kept", source, where);
  for (const auto& r : kept) {
    if (r.size() != 2) fail(source, where + ": each kept range is [begin, end]");
    p.kept.push_back({r[0], r[1]});
  }
  p.sources = get_field<std::vector<int>>(j, "sources", source, where);
  return p;
}
}  // namespace

const char* kv_kind_name(KVKind kind) { return kind == KVKind::Key ? "k" : "v"; }

int64_t LayerKindPlan::kept_features() const {
  int64_t n = 0;
  for (const auto& r : kept) n += r.size();
  return n;
}

std::vector<FeatureRange> LayerKindPlan::dropped(int64_t features) const {
  std::vector<FeatureRange> out;
  if (global) return out;
  int64_t at = 0;
  for (const auto& r : kept) {
    if (r.begin > at) out.push_back({at, r.begin});
    at = r.end;
  }
  if (at < features) out.push_back({at, features});
  return out;
}

int64_t HeadPlan::stored_features() const {
  int64_t n = 0;
  for (const auto* side : {&k, &v})
    for (const auto& p : *side) n += p.global ? shape.features() : p.kept_features();
  return n;
}

int64_t HeadPlan::input_features(int layer, KVKind kind) const {
  const auto& p = at(layer, kind);
  if (p.global) return 0;
  return int64_t(p.sources.size()) * shape.features() + p.kept_features();
}

int64_t HeadPlan::output_features(int layer, KVKind kind) const {
  const auto& p = at(layer, kind);
  return p.global ? 0 : shape.features() - p.kept_features();
}

bool HeadPlan::is_full() const {
  for (const auto* side : {&k, &v})
    for (const auto& p : *side)
      if (!p.global) return false;
  return true;
}

void HeadPlan::validate(const std::string& source) const {
  if (shape.num_layers <= 0 || shape.num_kv_heads <= 0 || shape.head_dim <= 0)
    fail(source, "shape must have positive num_layers, num_kv_heads and head_dim");
  const int64_t F = shape.features();
  for (KVKind kind : {KVKind::Key, KVKind::Value}) {
    const auto& side = kind == KVKind::Key ? k : v;
    if (int64_t(side.size()) != shape.num_layers)
      fail(source, std::string("plan has ") + std::to_string(side.size()) + " " + kv_kind_name(kind) +
                       " layers, shape says " + std::to_string(shape.num_layers));
    for (int l = 0; l < int(side.size()); ++l) {
      const auto& p = side[l];
      const std::string where = "layer " + std::to_string(l) + " " + kv_kind_name(kind);
      if (p.global) continue;
      int64_t prev_end = 0;
      for (const auto& r : p.kept) {
        if (r.begin < 0 || r.end > F || r.begin >= r.end)
          fail(source, where + ": kept range [" + std::to_string(r.begin) + ", " + std::to_string(r.end) +
                           ") is empty or outside [0, " + std::to_string(F) + ")");
        if (r.begin < prev_end)
          fail(source, where + ": kept ranges overlap or are not sorted");
        prev_end = r.end;
      }
      if (p.kept_features() == F) fail(source, where + ": keeps every feature; mark it global instead");
      if (p.sources.empty() && p.kept.empty())
        fail(source, where + ": nothing to rebuild from (no sources and no kept features)");
      std::set<int> seen;
      for (int s : p.sources) {
        if (s < 0 || s >= l) fail(source, where + ": source layer " + std::to_string(s) + " must come before it");
        if (!side[s].global) fail(source, where + ": source layer " + std::to_string(s) + " is not global");
        if (!seen.insert(s).second) fail(source, where + ": source layer " + std::to_string(s) + " repeated");
      }
    }
  }
}

nlohmann::json HeadPlan::to_json() const {
  nlohmann::json layers = nlohmann::json::array();
  for (int l = 0; l < int(k.size()); ++l)
    layers.push_back({{"layer", l}, {"k", kind_to_json(k[l])}, {"v", kind_to_json(v[l])}});
  nlohmann::json j = {{"format", kFormat},
                      {"strategy", strategy},
                      {"target_ratio", target_ratio},
                      {"ratio", ratio()},
                      {"stored_features", stored_features()},
                      {"full_features", full_features()},
                      {"shape",
                       {{"num_layers", shape.num_layers},
                        {"num_kv_heads", shape.num_kv_heads},
                        {"head_dim", shape.head_dim}}},
                      {"layers", layers}};
  if (!notes.empty()) j["notes"] = notes;
  return j;
}

HeadPlan HeadPlan::from_json(const nlohmann::json& j, const std::string& source) {
  require_keys(j, {"format", "strategy", "target_ratio", "ratio", "stored_features", "full_features", "shape",
                   "layers", "notes"},
               source, "the plan");
  const auto format = get_field<std::string>(j, "format", source, "the plan");
  if (format != kFormat) fail(source, "format is \"" + format + "\", expected \"" + kFormat + "\"");
  HeadPlan plan;
  plan.strategy = get_field<std::string>(j, "strategy", source, "the plan");
  plan.target_ratio = get_field<double>(j, "target_ratio", source, "the plan");
  if (j.contains("notes")) plan.notes = get_field<std::string>(j, "notes", source, "the plan");
  const auto& shape = j.contains("shape") ? j.at("shape") : nlohmann::json();
  if (shape.is_null()) fail(source, "missing key 'shape'");
  require_keys(shape, {"num_layers", "num_kv_heads", "head_dim"}, source, "shape");
  plan.shape.num_layers = get_field<int64_t>(shape, "num_layers", source, "shape");
  plan.shape.num_kv_heads = get_field<int64_t>(shape, "num_kv_heads", source, "shape");
  plan.shape.head_dim = get_field<int64_t>(shape, "head_dim", source, "shape");
  if (!j.contains("layers") || !j.at("layers").is_array()) fail(source, "'layers' must be an array");
  const auto& layers = j.at("layers");
  if (int64_t(layers.size()) != plan.shape.num_layers)
    fail(source, "'layers' has " + std::to_string(layers.size()) + " entries, shape says " +
                     std::to_string(plan.shape.num_layers));
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string where = "layers[" + std::to_string(i) + "]";
    require_keys(layers[i], {"layer", "k", "v"}, source, where);
    if (get_field<int64_t>(layers[i], "layer", source, where) != int64_t(i))
      fail(source, where + ": 'layer' must be " + std::to_string(i) + " (layers in order)");
    if (!layers[i].contains("k") || !layers[i].contains("v")) fail(source, where + ": needs both 'k' and 'v'");
    plan.k.push_back(kind_from_json(layers[i].at("k"), source, where + ".k"));
    plan.v.push_back(kind_from_json(layers[i].at("v"), source, where + ".v"));
  }
  plan.validate(source);
  // Stated sizes, when present, must be what the layout implies (catches hand edits).
  if (j.contains("stored_features") && get_field<int64_t>(j, "stored_features", source, "the plan") != plan.stored_features())
    fail(source, "stored_features says " + j.at("stored_features").dump() + " but the layers store " +
                     std::to_string(plan.stored_features()));
  if (j.contains("ratio") && std::abs(get_field<double>(j, "ratio", source, "the plan") - plan.ratio()) > 1e-9)
    fail(source, "ratio says " + j.at("ratio").dump() + " but the layers give " + std::to_string(plan.ratio()));
  return plan;
}

HeadPlan HeadPlan::load(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
  return from_json(j, path);
}

void HeadPlan::save(const std::string& path) const {
  validate(path);
  write_text_atomic(path, to_json().dump(2) + "\n");
}

HeadPlan HeadPlan::full(const PlanShape& shape) {
  HeadPlan plan;
  plan.shape = shape;
  plan.strategy = "full";
  plan.target_ratio = 1.0;
  plan.k.assign(shape.num_layers, LayerKindPlan{});
  plan.v.assign(shape.num_layers, LayerKindPlan{});
  return plan;
}

HeadPlan HeadPlan::paper(const PlanShape& shape, int group_size, int64_t local_features) {
  if (group_size < 1) throw Error("paper plan: group size S must be >= 1");
  if (local_features < 0 || local_features >= shape.features())
    throw Error("paper plan: D_local must be in [0, " + std::to_string(shape.features()) + ")");
  HeadPlan plan = full(shape);
  plan.strategy = "paper";
  for (int l = 0; l < shape.num_layers; ++l) {
    const int global = (l / group_size) * group_size;
    if (l == global) continue;
    LayerKindPlan p;
    p.global = false;
    if (local_features > 0) p.kept.push_back({0, local_features});
    p.sources = {global};
    plan.k[l] = p;
    plan.v[l] = p;
  }
  plan.target_ratio = plan.ratio();
  plan.notes = "paper layout: S=" + std::to_string(group_size) + ", D_local=" + std::to_string(local_features);
  return plan;
}

HeadPlan HeadPlan::paper_for_ratio(const PlanShape& shape, double target_ratio, int64_t granularity) {
  if (!(target_ratio > 0.0)) throw Error("paper plan: target ratio must be > 0");
  if (target_ratio >= 1.0) return full(shape);
  if (granularity < 1) granularity = 1;
  const int64_t L = shape.num_layers, F = shape.features();
  for (int S = 2; S <= L; ++S) {
    const int64_t groups = (L + S - 1) / S;
    if (double(groups) / double(L) > target_ratio + 1e-12) continue;
    const double budget = target_ratio * double(L * F) - double(groups * F);  // per kind
    int64_t local = int64_t(std::floor(budget / double(L - groups) / double(granularity) + 1e-9)) * granularity;
    local = std::clamp<int64_t>(local, 0, F - granularity);
    HeadPlan plan = paper(shape, S, local);
    plan.target_ratio = target_ratio;
    return plan;
  }
  throw Error("paper plan: ratio " + std::to_string(target_ratio) + " is below what one global layer costs (" +
              std::to_string(1.0 / double(L)) + ")");
}

}  // namespace echokv
