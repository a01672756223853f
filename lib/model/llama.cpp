#include "model/llama.h"

#include <cstdlib>

#include <cmath>
#include <set>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/runtime.h"
#include "io/checkpoint.h"

namespace echokv {

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

const char* const kEmbedName = "model.embed_tokens.weight";
const char* const kNormName = "model.norm.weight";
const char* const kLmHeadName = "lm_head.weight";

// One decoder layer's tensors: the HF name after "model.layers.<l>.", where it lives in
// LayerWeights, and the shape a config implies. The only list of them: loading, validation
// and saving all read it.
struct LayerTensor {
  const char* suffix;
  torch::Tensor LayerWeights::*member;
  std::vector<int64_t> (*shape)(const ModelConfig&);
};

const std::vector<LayerTensor>& layer_tensors() {
  using Shape = std::vector<int64_t>;
  static const std::vector<LayerTensor> table = {
      {"input_layernorm.weight", &LayerWeights::input_layernorm, [](const ModelConfig& c) { return Shape{c.hidden_size}; }},
      {"self_attn.q_proj.weight", &LayerWeights::q_proj, [](const ModelConfig& c) { return Shape{c.q_dim(), c.hidden_size}; }},
      {"self_attn.k_proj.weight", &LayerWeights::k_proj, [](const ModelConfig& c) { return Shape{c.kv_dim(), c.hidden_size}; }},
      {"self_attn.v_proj.weight", &LayerWeights::v_proj, [](const ModelConfig& c) { return Shape{c.kv_dim(), c.hidden_size}; }},
      {"self_attn.o_proj.weight", &LayerWeights::o_proj, [](const ModelConfig& c) { return Shape{c.hidden_size, c.q_dim()}; }},
      {"post_attention_layernorm.weight", &LayerWeights::post_attention_layernorm,
       [](const ModelConfig& c) { return Shape{c.hidden_size}; }},
      {"mlp.gate_proj.weight", &LayerWeights::gate_proj, [](const ModelConfig& c) { return Shape{c.intermediate_size, c.hidden_size}; }},
      {"mlp.up_proj.weight", &LayerWeights::up_proj, [](const ModelConfig& c) { return Shape{c.intermediate_size, c.hidden_size}; }},
      {"mlp.down_proj.weight", &LayerWeights::down_proj, [](const ModelConfig& c) { return Shape{c.hidden_size, c.intermediate_size}; }},
  };
  return table;
}

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

torch::Tensor to_compute(const torch::Tensor& t, torch::Device device, torch::ScalarType dtype) {
  // Same dtype on CPU: .to() returns the mmap view itself (zero copy).
  return t.to(device, dtype);
}

}  // namespace

std::vector<HfTensorSpec> hf_tensor_specs(const ModelConfig& c) {
  std::vector<HfTensorSpec> out;
  out.push_back({kEmbedName, {c.vocab_size, c.hidden_size}, false});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    for (const auto& t : layer_tensors())
      out.push_back({layer_prefix(l) + t.suffix, t.shape(c), t.member == &LayerWeights::input_layernorm ||
                                                                 t.member == &LayerWeights::post_attention_layernorm});
  out.push_back({kNormName, {c.hidden_size}, true});
  if (!c.tie_word_embeddings) out.push_back({kLmHeadName, {c.vocab_size, c.hidden_size}, false});
  return out;
}

QueryPositions make_query_positions(int64_t start, int64_t count, torch::Device device) {
  QueryPositions q;
  q.positions = torch::arange(start, start + count, torch::TensorOptions().dtype(torch::kInt64).device(device));
  q.min_position = start;
  q.max_position = start + count - 1;
  return q;
}

std::shared_ptr<LlamaModel> LlamaModel::load(const std::string& dir, const LoadOptions& options) {
  ModelConfig config = ModelConfig::load(dir);
  Checkpoint ck = Checkpoint::open(dir);
  const torch::Device device = parse_device(options.device);
  const torch::ScalarType dtype = parse_compute_dtype(options.dtype, device);
  std::map<std::string, torch::Tensor> tensors;
  std::set<std::string> expected;
  for (const auto& spec : hf_tensor_specs(config)) {
    const std::string& name = spec.name;
    const std::vector<int64_t>& shape = spec.shape;
    expected.insert(name);
    if (!ck.contains(name)) fail(dir, "missing tensor '" + name + "' required by config.json");
    const TensorInfo& info = ck.info(name);
    if (info.shape != shape)
      fail(ck.file_of(name), "tensor '" + name + "' has shape " + shape_str(info.shape) +
                                 " but config.json implies " + shape_str(shape));
    if (!c10::isFloatingType(info.dtype))
      fail(ck.file_of(name), "tensor '" + name + "' has non-float dtype " + info.dtype_tag);
    tensors[name] = ck.tensor(name);
    // A NaN / Inf weight once gave garbage (every token 0) with exit 0.
    if (!torch::isfinite(tensors[name]).all().item<bool>())
      fail(ck.file_of(name), "tensor '" + name + "' holds NaN or Inf values (a damaged or mis-converted checkpoint)");
  }
  for (const auto& name : ck.names()) {
    if (expected.count(name)) continue;
    if (name == kLmHeadName && config.tie_word_embeddings) continue;  // HF ties it anyway
    if (name.find(".bias") != std::string::npos)
      fail(ck.file_of(name), "tensor '" + name + "': biases are not supported by llama/mistral");
    spdlog::warn("{}: ignoring unused tensor '{}'", ck.file_of(name), name);
  }
  return from_tensors(config, tensors, device, dtype, dir);
}

std::shared_ptr<LlamaModel> LlamaModel::from_tensors(const ModelConfig& config,
                                                     const std::map<std::string, torch::Tensor>& tensors,
                                                     torch::Device device, torch::ScalarType dtype,
                                                     const std::string& source) {
  std::shared_ptr<LlamaModel> m(new LlamaModel());
  m->config_ = config;
  m->device_ = device;
  m->dtype_ = dtype;
  m->source_ = source;
  m->rope_ = std::make_shared<Rope>(config, device);
  auto get = [&](const std::string& name, const std::vector<int64_t>& shape) {
    auto it = tensors.find(name);
    if (it == tensors.end()) fail(source, "missing tensor '" + name + "'");
    if (it->second.sizes().vec() != shape)
      fail(source, "tensor '" + name + "' has shape " + shape_str(it->second.sizes()) + " but config implies " +
                       shape_str(shape));
    return to_compute(it->second, device, dtype);
  };
  for (const auto& spec : hf_tensor_specs(config)) get(spec.name, spec.shape);  // validate all first
  m->embed_tokens_ = get(kEmbedName, {config.vocab_size, config.hidden_size});
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    LayerWeights w;
    for (const auto& t : layer_tensors()) w.*t.member = get(layer_prefix(l) + t.suffix, t.shape(config));
    m->layers_.push_back(w);
  }
  m->norm_ = get(kNormName, {config.hidden_size});
  m->lm_head_ = config.tie_word_embeddings ? m->embed_tokens_ : get(kLmHeadName, {config.vocab_size, config.hidden_size});
  return m;
}

torch::Tensor LlamaModel::embed(const torch::Tensor& ids) const {
  return torch::embedding(embed_tokens_, ids.to(device_));
}

torch::Tensor LlamaModel::rms_norm(const torch::Tensor& x, const torch::Tensor& weight) const {
  // HF LlamaRMSNorm: statistics in float32, cast back, then scale.
  auto xf = x.to(torch::kFloat32);
  auto var = xf.pow(2).mean(-1, true);
  xf = xf * torch::rsqrt(var + config_.rms_norm_eps);
  return weight * xf.to(x.scalar_type());
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> LlamaModel::project_qkv(int layer,
                                                                                const torch::Tensor& x) const {
  const LayerWeights& w = layers_[layer];
  const int64_t b = x.size(0), t = x.size(1), d = config_.head_dim;
  auto q = torch::linear(x, w.q_proj).view({b, t, config_.num_attention_heads, d}).transpose(1, 2);
  auto k = torch::linear(x, w.k_proj).view({b, t, config_.num_key_value_heads, d}).transpose(1, 2);
  auto v = torch::linear(x, w.v_proj).view({b, t, config_.num_key_value_heads, d}).transpose(1, 2);
  return {q, k, v};
}

AttentionOptions LlamaModel::attention_options() const {
  AttentionOptions opt;
  opt.scale = 1.0 / std::sqrt(static_cast<double>(config_.head_dim));
  if (config_.model_type == "mistral") opt.sliding_window = config_.sliding_window;
  // ECHOKV_FUSED_ATTENTION=0 keeps attention on the plain path (a diagnostic switch: e.g. to
  // compare against LibTorch's fused kernel on a device or dtype where it is slow).
  static const bool fused_off = [] {
    const char* v = std::getenv("ECHOKV_FUSED_ATTENTION");
    return v && std::string(v) == "0";
  }();
  if (fused_off) opt.fused = false;
  return opt;
}

torch::Tensor LlamaModel::mlp(int layer, const torch::Tensor& x) const {
  const LayerWeights& w = layers_[layer];
  return torch::linear(torch::silu(torch::linear(x, w.gate_proj)) * torch::linear(x, w.up_proj), w.down_proj);
}

torch::Tensor LlamaModel::layer_forward(int layer, const torch::Tensor& h, const QueryPositions& qpos,
                                        KVCache& cache, LayerObserver* observer) {
  const LayerWeights& w = layers_[layer];
  const int64_t b = h.size(0), t = h.size(1);
  auto x = rms_norm(h, w.input_layernorm);
  auto [q, k, v] = project_qkv(layer, x);
  if (observer) observer->on_qkv(layer, q, k, v, qpos.positions);
  if (cache.wants_layer_input()) cache.set_layer_input(layer, x);
  cache.append(layer, k, v, qpos.positions);
  auto q_rot = rope_->apply(q, qpos.positions);
  auto attn = attend(q_rot, qpos, cache, layer, attention_options());  // [B, Hq, T, D]
  attn = attn.transpose(1, 2).reshape({b, t, config_.q_dim()});
  auto h2 = h + torch::linear(attn, w.o_proj);
  return h2 + mlp(layer, rms_norm(h2, w.post_attention_layernorm));
}

torch::Tensor LlamaModel::head(const torch::Tensor& h) const {
  return torch::linear(rms_norm(h, norm_), lm_head_).to(torch::kFloat32);
}

torch::Tensor LlamaModel::forward(const torch::Tensor& ids, KVCache& cache, const ForwardOptions& options) {
  if (ids.dim() != 2) throw Error("forward: ids must be [B, T], got " + shape_str(ids.sizes()));
  const int64_t t = ids.size(1);
  torch::NoGradGuard no_grad;
  auto qpos = make_query_positions(cache.next_position(), t, device_);
  auto h = embed(ids);
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l)
    h = layer_forward(static_cast<int>(l), h, qpos, cache, options.observer);
  cache.advance(t);
  if (options.last_only) h = h.narrow(1, t - 1, 1);
  return head(h);
}

std::vector<std::pair<std::string, torch::Tensor>> LlamaModel::named_tensors() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  out.push_back({kEmbedName, embed_tokens_});
  for (size_t l = 0; l < layers_.size(); ++l)
    for (const auto& t : layer_tensors()) out.push_back({layer_prefix(int64_t(l)) + t.suffix, layers_[l].*t.member});
  out.push_back({kNormName, norm_});
  if (!config_.tie_word_embeddings) out.push_back({kLmHeadName, lm_head_});
  return out;
}

int64_t LlamaModel::parameter_count() const {
  int64_t n = 0;
  for (const auto& kv : named_tensors()) n += kv.second.numel();
  return n;
}

}  // namespace echokv
