// echokv-eval: run a model. Subcommands: `logits` (all-position logits to safetensors),
// `generate` (greedy or sampled continuation of a prompt).
#include <iostream>

#include <CLI/CLI.hpp>

#include "cache/cache_factory.h"
#include "cli/common.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/generate.h"
#include "model/session.h"

using namespace echokv;

namespace {

void add_runtime_flags(CLI::App* cmd, RuntimeFlags& rt) {
  cmd->add_option("--device", rt.device, "cpu | cuda | cuda:N")->capture_default_str();
  cmd->add_option("--dtype", rt.dtype, "compute dtype: float32 | bfloat16 | float16 (GPU)")->capture_default_str();
  cmd->add_option("--threads", rt.threads, "CPU threads (0 = ECHOKV_THREADS or all cores)");
}

void check_cache_kind(const std::string& kind) {
  if (kind != "full") throw Error("--cache '" + kind + "': only 'full' is available in this build");
}

}  // namespace

int main(int argc, char** argv) {
  return run_app("echokv-eval", [&]() -> int {
    CLI::App app{"EchoKV-cpp evaluation and inference"};
    app.require_subcommand(1);
    RuntimeFlags rt;
    std::string model_dir, ids_text, out_path, cache_kind = "full", stop_text;
    int64_t chunk = 512;

    auto* logits_cmd = app.add_subcommand("logits", "write logits [T, vocab] float32 for a token sequence");
    logits_cmd->add_option("--model", model_dir, "HF model folder")->required();
    logits_cmd->add_option("--ids", ids_text, "token ids, e.g. 1,2,3")->required();
    logits_cmd->add_option("--out", out_path, "output .safetensors (tensor 'logits')")->required();
    logits_cmd->add_option("--chunk", chunk, "prefill chunk size")->capture_default_str();
    logits_cmd->add_option("--cache", cache_kind, "full")->capture_default_str();
    add_runtime_flags(logits_cmd, rt);

    GenerateOptions gen;
    bool greedy = false, sample = false, as_json = false;
    auto* gen_cmd = app.add_subcommand("generate", "continue a prompt");
    gen_cmd->add_option("--model", model_dir, "HF model folder")->required();
    gen_cmd->add_option("--ids", ids_text, "prompt token ids, e.g. 1,2,3")->required();
    gen_cmd->add_option("--max-new-tokens", gen.max_new_tokens, "tokens to generate")->capture_default_str();
    gen_cmd->add_flag("--greedy", greedy, "greedy decoding (the default)");
    gen_cmd->add_flag("--sample", sample, "sample instead of greedy");
    gen_cmd->add_option("--temperature", gen.sampling.temperature, "sampling temperature")->capture_default_str();
    gen_cmd->add_option("--top-k", gen.sampling.top_k, "keep the k most likely tokens (0 = off)")->capture_default_str();
    gen_cmd->add_option("--top-p", gen.sampling.top_p, "nucleus mass (1 = off)")->capture_default_str();
    gen_cmd->add_option("--seed", gen.sampling.seed, "sampling seed")->capture_default_str();
    gen_cmd->add_option("--stop-ids", stop_text, "stop token ids (default: the config's eos ids)");
    gen_cmd->add_option("--chunk", gen.prefill_chunk, "prefill chunk size")->capture_default_str();
    gen_cmd->add_option("--cache", cache_kind, "full")->capture_default_str();
    gen_cmd->add_flag("--json", as_json, "print {\"ids\": [...]} at the end instead of streaming ids");
    add_runtime_flags(gen_cmd, rt);

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e);
    }
    check_cache_kind(cache_kind);
    auto ids = parse_id_list(ids_text);
    auto model = load_model_for_run(model_dir, rt.device, rt.dtype, rt.threads);

    if (logits_cmd->parsed()) {
      auto logits = sequence_logits(*model, ids, chunk);
      save_safetensors(out_path, {{"logits", logits.contiguous()}});
      std::cerr << "wrote logits " << logits.size(0) << "x" << logits.size(1) << " to " << out_path << "\n";
      return 0;
    }

    if (greedy && sample) throw Error("--greedy and --sample are mutually exclusive");
    gen.sampling.greedy = !sample;
    check_ids_in_vocab(*model, ids);
    gen.stop_ids = stop_text.empty() ? model->config().eos_token_ids : parse_id_list(stop_text, "--stop-ids");
    if (!as_json) {
      gen.on_token = [](int64_t token) {
        std::cout << token << ' ' << std::flush;
        return true;
      };
    }
    auto cache = make_full_cache(*model, static_cast<int64_t>(ids.size()) + gen.max_new_tokens);
    auto result = generate(*model, *cache, ids, gen);
    if (as_json) std::cout << ids_to_json(result.tokens) << std::endl;
    else std::cout << std::endl;
    return 0;
  });
}
