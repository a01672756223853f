// `echokv-bench echo-switch`: EchoKV's on-demand transition inside one request, timed per
// decode step: a prompt prefilled on the full cache, then decode steps across the switch
// (echo/switching_cache.h) to the EchoKV cache at a ratio, on 8B-shaped layers. Each step's
// time, the cache's bytes after it, and the conversion step's share are written, so the JSON
// shows full-cache speed before, the one-off conversion, and EchoKV speed after.
#include <iostream>

#include <nlohmann/json.hpp>

#include "bench/machine.h"
#include "bench_commands.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/files.h"
#include "core/runtime.h"
#include "core/torch_compat.h"
#include "echo/switching_cache.h"
#include "model/random_model.h"

namespace echokv {

void register_echo_switch_bench(CLI::App& app, int& threads) {
  struct Opts {
    ModelConfig cfg;
    int64_t context = 4096, switch_after = 16, steps = 48, prefill_chunk = 512;
    double ratio = 0.5;
    EchoCacheOptions echo;
    std::string out, device = "cpu", dtype = "float32";
  };
  auto o = std::make_shared<Opts>();
  o->cfg = eight_b_shaped_layers();
  auto* cmd = app.add_subcommand("echo-switch", "EchoKV's in-request switch from the full cache: time per decode step across it");
  cmd->add_option("--layers", o->cfg.num_hidden_layers)->capture_default_str();
  cmd->add_option("--context", o->context, "prompt tokens (prefilled on the full cache)")->capture_default_str();
  cmd->add_option("--switch-after", o->switch_after, "decode steps on the full cache before the switch")->capture_default_str();
  cmd->add_option("--steps", o->steps, "decode steps in all")->capture_default_str();
  cmd->add_option("--ratio", o->ratio, "EchoKV ratio (paper layout)")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu, cuda, cuda:N")->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "compute dtype: float32, bfloat16")->capture_default_str();
  cmd->add_option("--out", o->out, "write the JSON here too (atomically)");
  cmd->callback([o, &threads]() {
    const int used = configure_threads(threads);
    const torch::Device device = parse_device(o->device);
    const auto dtype = parse_compute_dtype(o->dtype, device);
    ModelConfig& cfg = o->cfg;
    cfg.max_position_embeddings = 1 << 20;
    if (o->steps <= o->switch_after || o->switch_after < 0) throw Error("echo-switch: --steps must exceed --switch-after");
    auto model = LlamaModel::from_tensors(cfg, random_llama_tensors(cfg, 1), device, dtype, "<bench>");
    torch::NoGradGuard ng;
    const PlanShape shape{cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim};
    auto recon = std::make_shared<Reconstructor>(HeadPlan::paper_for_ratio(shape, o->ratio, cfg.head_dim / 2), true, 7, device);
    const int64_t total = o->context + o->steps, limit = o->context + o->switch_after;
    auto make_full = [&] { return std::make_unique<FullCache>(cfg, model->rope(), 1, limit, device, dtype); };
    auto make_echo = [&] {
      EchoCacheOptions eo = o->echo;
      eo.capacity = total;
      return std::make_unique<EchoCache>(cfg, model->rope(), recon, 1, eo, device, dtype);
    };
    SwitchingEchoCache cache(make_full, limit, make_echo, model->rope());
    auto ids = torch::randint(0, cfg.vocab_size, {1, total}, torch::kInt64).to(device);
    ForwardOptions fo;
    fo.last_only = true;
    for (int64_t s = 0; s < o->context; s += o->prefill_chunk)
      model->forward(ids.narrow(1, s, std::min(o->prefill_chunk, o->context - s)), cache, fo);
    nlohmann::json steps = nlohmann::json::array();
    double before = 0, after = 0, at_switch = 0;
    for (int64_t i = 0; i < o->steps; ++i) {
      const bool was = cache.switched();
      const double t0 = monotonic_seconds();
      model->forward(ids.narrow(1, o->context + i, 1), cache, fo);
      compat::synchronize(device);
      const double ms = (monotonic_seconds() - t0) * 1000.0;
      const std::string phase = !cache.switched() ? "full" : was ? "echo" : "switch";
      (phase == "full" ? before : phase == "echo" ? after : at_switch) += ms;
      steps.push_back({{"step", i}, {"ms", ms}, {"phase", phase}, {"stored_mib", double(cache.bytes()) / 1048576.0},
                       {"stored_vs_full", double(cache.bytes()) / double(cache.full_bytes())}});
    }
    const double full_ms = before / double(o->switch_after), echo_ms = after / double(o->steps - o->switch_after - 1);
    nlohmann::json result = {{"bench", "echo-switch"},
                             {"environment", bench_environment(device, dtype, used)},
                             {"threads", used},
                             {"model", {{"layers", cfg.num_hidden_layers}, {"kv_heads", cfg.num_key_value_heads}, {"head_dim", cfg.head_dim}}},
                             {"context", o->context},
                             {"ratio", o->ratio},
                             {"switch_at_tokens", limit},
                             {"full_ms_per_step", full_ms},
                             {"echo_ms_per_step", echo_ms},
                             {"switch_step_ms", at_switch},
                             {"echo_vs_full", echo_ms / full_ms},
                             {"steps", steps}};
    std::cout << result.dump(2) << std::endl;
    if (!o->out.empty()) write_text_atomic(o->out, result.dump(2) + "\n");
  });
}

}  // namespace echokv
