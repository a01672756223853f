// `echokv-bench echo-decode`: decode latency and prefill peak memory of the EchoKV cache
// against the full cache on a random model of a realistic KV shape (8 KV heads x 128, as
// Llama-3-8B / Mistral-7B), at several contexts and ratios (paper layouts), measured in one
// run so the echo/full ratios are robust to machine noise. Peak RSS is reset before each
// prefill (/proc/self/clear_refs), so each method's peak is its own.
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "bench/machine.h"
#include "bench_commands.h"
#include "cache/cache_factory.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/runtime.h"
#include "core/torch_compat.h"
#include "echo/echo_cache.h"
#include "model/random_model.h"

namespace echokv {

void register_echo_decode_bench(CLI::App& app, int& threads) {
  struct Opts {
    ModelConfig cfg;
    std::vector<int64_t> contexts = {1024, 4096, 16384};
    std::vector<double> ratios = {0.7, 0.5, 0.3};
    int64_t decode_steps = 8, prefill_chunk = 512;
    EchoCacheOptions echo;
    std::string out, device = "cpu", dtype = "float32";
  };
  auto o = std::make_shared<Opts>();
  o->cfg = eight_b_shaped_layers();
  auto* cmd = app.add_subcommand("echo-decode", "EchoKV vs full cache: decode latency, prefill peak RSS, bytes");
  cmd->add_option("--layers", o->cfg.num_hidden_layers)->capture_default_str();
  cmd->add_option("--hidden", o->cfg.hidden_size)->capture_default_str();
  cmd->add_option("--heads", o->cfg.num_attention_heads)->capture_default_str();
  cmd->add_option("--kv-heads", o->cfg.num_key_value_heads)->capture_default_str();
  cmd->add_option("--head-dim", o->cfg.head_dim)->capture_default_str();
  cmd->add_option("--intermediate", o->cfg.intermediate_size)->capture_default_str();
  cmd->add_option("--contexts", o->contexts, "contexts")->delimiter(',')->capture_default_str();
  cmd->add_option("--ratios", o->ratios, "EchoKV ratios (paper layouts)")->delimiter(',')->capture_default_str();
  cmd->add_option("--decode-steps", o->decode_steps)->capture_default_str();
  cmd->add_option("--prefill-chunk", o->prefill_chunk)->capture_default_str();
  cmd->add_option("--echo-chunk", o->echo.chunk_tokens)->capture_default_str();
  cmd->add_option("--device", o->device, "cpu, cuda, cuda:N")->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "compute dtype: float32, bfloat16 (float16 on CUDA)")->capture_default_str();
  cmd->add_option("--out", o->out, "write the JSON here too (atomically)");
  cmd->callback([o, &threads]() {
    const int used = configure_threads(threads);
    const torch::Device device = parse_device(o->device);
    const auto dtype = parse_compute_dtype(o->dtype, device);
    ModelConfig& cfg = o->cfg;
    cfg.max_position_embeddings = 1 << 20;
    auto model = LlamaModel::from_tensors(cfg, random_llama_tensors(cfg, 1), device, dtype, "<bench>");
    torch::NoGradGuard ng;
    const PlanShape shape{cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim};
    struct Method {
      std::string name;
      std::shared_ptr<const Reconstructor> recon;
    };
    std::vector<Method> methods = {{"full", nullptr}};
    for (double r : o->ratios)
      methods.push_back({"echo-" + std::to_string(r).substr(0, 4),
                         std::make_shared<Reconstructor>(HeadPlan::paper_for_ratio(shape, r, cfg.head_dim / 2), true, 7)});
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t ctx : o->contexts) {
      auto ids = torch::randint(0, cfg.vocab_size, {1, ctx + o->decode_steps}, torch::kInt64).to(device);
      double full_ms = 0;
      for (const auto& m : methods) {
        const double rss_before = current_rss_mib();
        const bool reset = reset_peak_rss();
        compat::reset_device_peak(device);
        std::unique_ptr<KVCache> cache;
        if (!m.recon) {
          cache = make_full_cache(*model, ctx + o->decode_steps);
        } else {
          EchoCacheOptions eo = o->echo;
          eo.capacity = ctx + o->decode_steps;
          cache = std::make_unique<EchoCache>(cfg, model->rope(), m.recon, 1, eo, device, dtype);
        }
        const double t0 = monotonic_seconds();
        for (int64_t s = 0; s < ctx; s += o->prefill_chunk) {
          ForwardOptions fo;
          fo.last_only = true;
          model->forward(ids.narrow(1, s, std::min(o->prefill_chunk, ctx - s)), *cache, fo);
        }
        compat::synchronize(device);
        const double prefill_s = monotonic_seconds() - t0;
        const double peak = peak_rss_mib();
        const int64_t peak_bytes = compat::device_peak_allocated_bytes(device);  // < 0: no allocator statistics (CPU)
        const nlohmann::json device_peak = peak_bytes < 0 ? nlohmann::json() : nlohmann::json(double(peak_bytes) / 1048576.0);
        auto* echo = dynamic_cast<EchoCache*>(cache.get());
        const double rebuild_before = echo ? echo->rebuild_seconds() : 0;
        const double t1 = monotonic_seconds();
        for (int64_t i = 0; i < o->decode_steps; ++i) {
          ForwardOptions fo;
          fo.last_only = true;
          model->forward(ids.narrow(1, ctx + i, 1), *cache, fo);
        }
        compat::synchronize(device);
        const double decode_ms = (monotonic_seconds() - t1) * 1000.0 / double(o->decode_steps);
        if (!m.recon) full_ms = decode_ms;
        nlohmann::json row = {{"context", ctx},
                              {"method", m.name},
                              {"prefill_seconds", prefill_s},
                              {"prefill_peak_rss_mib", reset ? peak : -1.0},
                              {"prefill_peak_rss_over_start_mib", reset ? peak - rss_before : -1.0},
                              {"prefill_peak_device_mib", device_peak},
                              {"decode_ms_per_token", decode_ms},
                              {"decode_tokens_per_second", 1000.0 / decode_ms},
                              {"decode_vs_full", decode_ms / full_ms},
                              {"stored_mib", double(cache->bytes()) / 1048576.0},
                              {"stored_vs_full", double(cache->bytes()) / double(cache->full_bytes())}};
        if (echo)
          row["decode_rebuild_share"] =
              (echo->rebuild_seconds() - rebuild_before) / (decode_ms * double(o->decode_steps) / 1000.0);
        std::cerr << row.dump() << std::endl;
        rows.push_back(row);
      }
    }
    nlohmann::json result = {{"bench", "echo-decode"},
                             {"environment", bench_environment(device, dtype, used)},
                             {"threads", used},
                             {"model",
                              {{"layers", cfg.num_hidden_layers},
                               {"hidden", cfg.hidden_size},
                               {"heads", cfg.num_attention_heads},
                               {"kv_heads", cfg.num_key_value_heads},
                               {"head_dim", cfg.head_dim},
                               {"intermediate", cfg.intermediate_size}}},
                             {"echo", {{"sink", o->echo.sink_tokens}, {"recent", o->echo.recent_tokens},
                                       {"chunk", o->echo.chunk_tokens}}},
                             {"rows", rows}};
    std::cout << result.dump(2) << std::endl;
    if (!o->out.empty()) write_text_atomic(o->out, result.dump(2) + "\n");
  });
}

}  // namespace echokv
