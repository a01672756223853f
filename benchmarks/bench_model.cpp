// `echokv-bench model`: prefill and decode speed of a random model of a realistic shape,
// peak RSS, and the machine's float32 GEMM ceiling measured in the same run.
#include <iostream>

#include <nlohmann/json.hpp>

#include "bench/machine.h"
#include "bench_commands.h"
#include "cache/cache_factory.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/runtime.h"
#include "core/torch_compat.h"
#include "model/random_model.h"

namespace echokv {

void register_model_bench(CLI::App& app, int& threads) {
  auto* cmd = app.add_subcommand("model", "prefill/decode throughput of a random Llama model (full cache)");
  struct Opts {
    ModelConfig cfg;
    std::vector<int64_t> contexts = {512, 2048, 8192};
    int64_t decode_steps = 16;
    int64_t prefill_chunk = 512;
    std::string out;
    std::string dtype = "float32";
    std::string device = "cpu";
  };
  auto o = std::make_shared<Opts>();
  o->cfg.num_hidden_layers = 8;
  o->cfg.hidden_size = 1024;
  o->cfg.num_attention_heads = 16;
  o->cfg.num_key_value_heads = 4;
  o->cfg.intermediate_size = 2816;
  o->cfg.vocab_size = 32000;
  cmd->add_option("--layers", o->cfg.num_hidden_layers)->capture_default_str();
  cmd->add_option("--hidden", o->cfg.hidden_size)->capture_default_str();
  cmd->add_option("--heads", o->cfg.num_attention_heads)->capture_default_str();
  cmd->add_option("--kv-heads", o->cfg.num_key_value_heads)->capture_default_str();
  cmd->add_option("--intermediate", o->cfg.intermediate_size)->capture_default_str();
  cmd->add_option("--vocab", o->cfg.vocab_size)->capture_default_str();
  cmd->add_option("--contexts", o->contexts, "decode contexts")->delimiter(',')->capture_default_str();
  cmd->add_option("--decode-steps", o->decode_steps)->capture_default_str();
  cmd->add_option("--prefill-chunk", o->prefill_chunk)->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "compute dtype: float32, bfloat16 (float16 on CUDA)")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu, cuda, cuda:N")->capture_default_str();
  cmd->add_option("--out", o->out, "write the JSON here too (atomically)");
  cmd->callback([o, &threads]() {
    const int used_threads = configure_threads(threads);
    ModelConfig& cfg = o->cfg;
    cfg.head_dim = cfg.hidden_size / cfg.num_attention_heads;
    cfg.max_position_embeddings = 1 << 20;
    std::sort(o->contexts.begin(), o->contexts.end());
    nlohmann::json result;
    const torch::Device device = parse_device(o->device);
    auto dtype = parse_compute_dtype(o->dtype, device);
    result["environment"] = bench_environment(device, dtype, used_threads);
    std::cerr << "measuring GEMM ceiling...\n";
    result["machine"] = {{"threads", used_threads},
                         {"gemm_f32_gflops", measure_gemm_gflops()},
                         {"gemv_f32_gb_per_s", measure_gemv_gb_per_s()}};
    if (!device.is_cpu() || dtype != torch::kFloat32)
      result["machine"]["gemm_device_dtype_gflops"] = measure_gemm_gflops(4096, 5, device, dtype);
    auto model = make_random_model(cfg, 1234, device, dtype);
    const double params = static_cast<double>(model->parameter_count());
    result["model"] = {{"layers", cfg.num_hidden_layers}, {"hidden", cfg.hidden_size},
                       {"heads", cfg.num_attention_heads}, {"kv_heads", cfg.num_key_value_heads},
                       {"intermediate", cfg.intermediate_size}, {"vocab", cfg.vocab_size},
                       {"parameters", params}, {"dtype", o->dtype}};
    // Non-embedding FLOPs per token (2 per weight), excluding the head and attention scores.
    const double body_flops = 2.0 * (params - 2.0 * cfg.vocab_size * cfg.hidden_size);
    torch::NoGradGuard no_grad;
    const int64_t max_ctx = o->contexts.back();
    auto cache = make_full_cache(*model, max_ctx + o->decode_steps * static_cast<int64_t>(o->contexts.size()) + 8);
    auto gen = at::detail::createCPUGenerator(7);
    nlohmann::json decode = nlohmann::json::array();
    double prefill_seconds = 0;
    int64_t prefill_tokens = 0;
    for (int64_t ctx : o->contexts) {
      // Prefill up to `ctx` in chunks (timed), then decode `decode_steps` tokens (timed).
      while (cache->next_position() < ctx) {
        const int64_t n = std::min(o->prefill_chunk, ctx - cache->next_position());
        auto ids = at::randint(0, cfg.vocab_size, {1, n}, gen, torch::kInt64).to(device);
        const double t0 = monotonic_seconds();
        ForwardOptions fo;
        fo.last_only = true;
        model->forward(ids, *cache, fo);
        compat::synchronize(device);
        prefill_seconds += monotonic_seconds() - t0;
        prefill_tokens += n;
        std::cerr << "\rprefill " << cache->next_position() << "/" << max_ctx << " tokens, "
                  << static_cast<int64_t>(prefill_tokens / prefill_seconds) << " tok/s" << std::flush;
      }
      std::cerr << "\n";
      auto step = torch::zeros({1, 1}, torch::TensorOptions().dtype(torch::kInt64).device(device));
      ForwardOptions fo;
      fo.last_only = true;
      model->forward(step, *cache, fo);  // warm-up
      compat::synchronize(device);
      const double t0 = monotonic_seconds();
      for (int64_t i = 0; i < o->decode_steps; ++i) model->forward(step, *cache, fo);
      compat::synchronize(device);
      const double per_token = (monotonic_seconds() - t0) / o->decode_steps;
      const double weight_bytes = params * c10::elementSize(dtype);
      const double kv_bytes = static_cast<double>(cache->bytes());
      decode.push_back({{"context", ctx},
                        {"ms_per_token", per_token * 1e3},
                        {"tokens_per_s", 1.0 / per_token},
                        {"effective_gb_per_s", (weight_bytes + kv_bytes) / per_token / 1e9},
                        {"fraction_of_gemv_ceiling", (weight_bytes + kv_bytes) / per_token / 1e9 /
                                                         result["machine"]["gemv_f32_gb_per_s"].get<double>()},
                        {"kv_cache_mib", kv_bytes / (1 << 20)}});
      std::cerr << "decode @" << ctx << ": " << per_token * 1e3 << " ms/token\n";
    }
    const double prefill_tps = prefill_tokens / prefill_seconds;
    result["prefill"] = {{"tokens", prefill_tokens}, {"chunk", o->prefill_chunk}, {"seconds", prefill_seconds},
                         {"tokens_per_s", prefill_tps},
                         {"gflops_body", prefill_tps * body_flops / 1e9},
                         {"fraction_of_gemm_ceiling", prefill_tps * body_flops / 1e9 /
                                                          result["machine"]["gemm_f32_gflops"].get<double>()}};
    result["decode"] = decode;
    result["peak_rss_mib"] = peak_rss_mib();
    const int64_t peak_bytes = compat::device_peak_allocated_bytes(device);  // < 0: no allocator statistics (CPU)
    result["peak_device_mib"] = peak_bytes < 0 ? nlohmann::json() : nlohmann::json(double(peak_bytes) / 1048576.0);
    const std::string text = result.dump(2);
    std::cout << text << std::endl;
    if (!o->out.empty()) write_text_atomic(o->out, text + "\n");
  });
}

}  // namespace echokv
