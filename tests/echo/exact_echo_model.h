// A small random model whose layers 1 and 2 have KV head 1 = a fixed linear map of KV head 0
// (k_proj / v_proj rows), and EchoKV reconstructors that apply exactly those maps from layer 0
// and the kept head 0: EchoKV on it equals the full cache, so combinations can be compared
// with full-cache references exactly.
#pragma once
#include "echo/echo_cache.h"
#include "model/llama.h"
#include "model/model_test_util.h"
#include "model/random_model.h"

namespace echokv::testing {

struct ExactEchoModel {
  torch::Device device = torch::kCPU;
  ModelConfig config = tiny_config();
  std::shared_ptr<LlamaModel> model;
  std::shared_ptr<Reconstructor> recon;

  // compress_keys = false: a values-only plan (every key layer global).
  ExactEchoModel(uint64_t weight_seed, uint64_t map_seed, bool compress_keys = true,
                 torch::Device device_ = torch::kCPU)
      : device(device_) {
    auto tensors = random_llama_tensors(config, weight_seed);
    const int64_t D = config.head_dim, F = config.kv_dim();
    HeadPlan plan = HeadPlan::full(PlanShape{config.num_hidden_layers, config.num_key_value_heads, D});
    std::map<std::string, torch::Tensor> maps;
    torch::manual_seed(map_seed);
    for (int l = 1; l < 3; ++l)
      for (KVKind kind : {KVKind::Key, KVKind::Value}) {
        if (kind == KVKind::Key && !compress_keys) continue;
        const std::string proj = "model.layers." + std::to_string(l) + ".self_attn." +
                                 (kind == KVKind::Key ? "k_proj" : "v_proj") + ".weight";
        auto a = torch::randn({D, D}) * 0.4;
        auto w = tensors[proj].clone();  // [F, H]
        w.slice(0, D, 2 * D).copy_(a.mm(w.slice(0, 0, D)));
        tensors[proj] = w;
        LayerKindPlan p;
        p.global = false;
        p.kept = {{0, D}};
        p.sources = {0};
        plan.at(l, kind) = p;
        // W: [out = D, in = F (source layer 0) + D (kept head 0)]; only the kept part is used.
        auto map = torch::zeros({D, F + D});
        map.slice(1, F, F + D).copy_(a);
        maps["layers." + std::to_string(l) + "." + kv_kind_name(kind) + ".weight"] = map;
      }
    model = LlamaModel::from_tensors(config, tensors, device, torch::kFloat32);
    plan.strategy = "exact-by-construction";
    recon = std::make_shared<Reconstructor>(plan, false, 0);
    recon->load_tensors(maps, "test maps");
  }

  std::unique_ptr<EchoCache> echo_cache(int64_t sink, int64_t recent, int64_t chunk) const {
    EchoCacheOptions o;
    o.sink_tokens = sink;
    o.recent_tokens = recent;
    o.chunk_tokens = chunk;
    o.capacity = 8;  // small: exercises growth
    return std::make_unique<EchoCache>(config, model->rope(), recon, 1, o, device, torch::kFloat32);
  }
};

}  // namespace echokv::testing
