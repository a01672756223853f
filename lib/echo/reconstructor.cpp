#include "echo/reconstructor.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "io/model_fingerprint.h"
#include "io/safetensors.h"

namespace echokv {

namespace {
std::string prefix(int layer, KVKind kind) {
  return "layers." + std::to_string(layer) + "." + kv_kind_name(kind);
}

torch::Tensor range_index(const std::vector<FeatureRange>& ranges, torch::Device device) {
  std::vector<int64_t> idx;
  for (const auto& r : ranges)
    for (int64_t i = r.begin; i < r.end; ++i) idx.push_back(i);
  return torch::tensor(idx, torch::kInt64).to(device);
}
}  // namespace

Reconstructor::Reconstructor(const HeadPlan& plan, bool bias, uint64_t seed, torch::Device device)
    : plan_(plan), bias_(bias) {
  plan_.validate("reconstructor plan");
  auto gen = at::detail::createCPUGenerator(seed);
  for (int l = 0; l < plan_.shape.num_layers; ++l)
    for (KVKind kind : {KVKind::Key, KVKind::Value}) {
      if (plan_.at(l, kind).global) continue;
      const int64_t in = plan_.input_features(l, kind), out = plan_.output_features(l, kind);
      const double bound = 1.0 / std::sqrt(double(in));
      Map m;
      m.weight = torch::empty({out, in}, torch::kFloat32).uniform_(-bound, bound, gen).to(device);
      if (bias) m.bias = torch::empty({out}, torch::kFloat32).uniform_(-bound, bound, gen).to(device);
      maps_[{l, int(kind)}] = m;
    }
  build_indices(device);
}

void Reconstructor::build_indices(torch::Device device) {
  indices_.clear();
  const int64_t F = plan_.shape.features();
  for (int l = 0; l < plan_.shape.num_layers; ++l)
    for (KVKind kind : {KVKind::Key, KVKind::Value}) {
      const auto& p = plan_.at(l, kind);
      if (p.global) continue;
      indices_[{l, int(kind)}] = Index{range_index(p.kept, device), range_index(p.dropped(F), device)};
    }
}

torch::Tensor Reconstructor::gather_input(int layer, KVKind kind, const std::vector<torch::Tensor>& source_features,
                                          const torch::Tensor& own_features) const {
  const auto& p = plan_.at(layer, kind);
  if (source_features.size() != p.sources.size())
    throw Error("reconstructor: layer " + std::to_string(layer) + " needs " + std::to_string(p.sources.size()) +
                " source layers, got " + std::to_string(source_features.size()));
  std::vector<torch::Tensor> parts(source_features.begin(), source_features.end());
  const auto& kept = kept_index(layer, kind);
  if (kept.numel() > 0) parts.push_back(own_features.index_select(-1, kept));
  return torch::cat(parts, -1);
}

torch::Tensor Reconstructor::rebuild(int layer, KVKind kind, const torch::Tensor& input) const {
  const auto& m = maps_.at({layer, int(kind)});
  auto w = m.weight.to(input.scalar_type());
  auto out = torch::matmul(input, w.t());
  if (m.bias.defined()) out = out + m.bias.to(input.scalar_type());
  return out;
}

torch::Tensor Reconstructor::assemble(int layer, KVKind kind, const torch::Tensor& own_features,
                                      const torch::Tensor& rebuilt) const {
  // index_copy keeps autograd through `rebuilt`.
  return own_features.index_copy(-1, dropped_index(layer, kind), rebuilt.to(own_features.scalar_type()));
}

std::pair<torch::Tensor, torch::Tensor> Reconstructor::feature_map(int layer, KVKind kind) const {
  const auto& m = maps_.at({layer, int(kind)});
  const int64_t F = plan_.shape.features(), in = plan_.input_features(layer, kind);
  const auto& kept = kept_index(layer, kind);
  const auto& dropped = dropped_index(layer, kind);
  auto map = torch::zeros({F, in}, m.weight.options());
  auto shift = torch::zeros({F}, m.weight.options());
  const int64_t first_kept = in - kept.numel();  // kept features come last in the input
  if (kept.numel() > 0) {
    auto cols = torch::arange(first_kept, in, kept.options());
    map.index_put_({kept, cols}, torch::ones({kept.numel()}, m.weight.options()));
  }
  map.index_copy_(0, dropped, m.weight.detach());
  if (m.bias.defined()) shift.index_copy_(0, dropped, m.bias.detach());
  return {map, shift};
}

std::vector<torch::Tensor> Reconstructor::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& [key, m] : maps_) {
    out.push_back(m.weight);
    if (m.bias.defined()) out.push_back(m.bias);
  }
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> Reconstructor::named_tensors() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [key, m] : maps_) {
    out.push_back({prefix(key.first, KVKind(key.second)) + ".weight", m.weight});
    if (m.bias.defined()) out.push_back({prefix(key.first, KVKind(key.second)) + ".bias", m.bias});
  }
  return out;
}

int64_t Reconstructor::parameter_count() const {
  int64_t n = 0;
  for (const auto& t : parameters()) n += t.numel();
  return n;
}

Reconstructor& Reconstructor::to(torch::Device device, torch::ScalarType dtype) {
  torch::NoGradGuard ng;
  for (auto& [key, m] : maps_) {
    m.weight = m.weight.to(device, dtype).detach().requires_grad_(m.weight.requires_grad());
    if (m.bias.defined()) m.bias = m.bias.to(device, dtype).detach().requires_grad_(m.bias.requires_grad());
  }
  build_indices(device);
  return *this;
}

void Reconstructor::load_tensors(const std::map<std::string, torch::Tensor>& tensors, const std::string& source) {
  torch::NoGradGuard ng;
  for (auto& [key, m] : maps_) {
    for (auto* t : {&m.weight, &m.bias}) {
      if (!t->defined()) continue;
      const std::string name = prefix(key.first, KVKind(key.second)) + (t == &m.weight ? ".weight" : ".bias");
      auto it = tensors.find(name);
      if (it == tensors.end()) fail(source, "missing tensor '" + name + "'");
      if (it->second.sizes() != t->sizes())
        fail(source, "tensor '" + name + "' has shape " + c10::str(it->second.sizes()) + ", the plan needs " +
                         c10::str(t->sizes()));
      t->copy_(it->second.to(t->device(), t->scalar_type()));
    }
  }
  for (const auto& [name, t] : tensors) {
    bool known = false;
    for (const auto& [n, _] : named_tensors()) known |= n == name;
    if (!known) fail(source, "unexpected tensor '" + name + "' (not in the plan)");
  }
}

void Reconstructor::save(const std::string& dir, const nlohmann::json& info) const {
  std::filesystem::create_directories(dir);
  save_safetensors(join_path(dir, "reconstructors.safetensors"), named_tensors(), {{"format", "echokv-reconstructors/1"}});
  plan_.save(join_path(dir, "plan.json"));
  nlohmann::json j = info;
  j["format"] = "echokv-echo/1";
  j["bias"] = bias_;
  j["ratio"] = plan_.ratio();
  j["parameters"] = parameter_count();
  write_text_atomic(join_path(dir, "echo.json"), j.dump(2) + "\n");
}

Reconstructor Reconstructor::load(const std::string& dir, const std::string& model_dir) {
  const std::string meta_path = join_path(dir, "echo.json");
  if (!file_exists(meta_path)) fail(dir, "not a trained EchoKV folder (echo.json missing)");
  auto meta = nlohmann::json::parse(read_text_file(meta_path), nullptr, false);
  if (meta.is_discarded() || !meta.is_object() || meta.value("format", "") != "echokv-echo/1")
    fail(meta_path, "not an EchoKV metadata file (format echokv-echo/1 expected)");
  if (!meta.contains("bias") || !meta["bias"].is_boolean()) fail(meta_path, "missing boolean 'bias'");
  auto plan = HeadPlan::load(join_path(dir, "plan.json"));
  if (!model_dir.empty()) {
    const std::string want = meta.value("base_model_fingerprint", "");
    const std::string have = model_fingerprint(model_dir);
    if (want != have)
      fail(dir, "trained for another base model (fingerprint " + want + ", '" + meta.value("base_model", "?") +
                    "'); " + model_dir + " has fingerprint " + have);
  }
  Reconstructor r(plan, meta["bias"].get<bool>(), 0);
  const std::string weights = join_path(dir, "reconstructors.safetensors");
  r.load_tensors(load_safetensors(weights), weights);
  return r;
}

}  // namespace echokv
