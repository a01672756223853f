#include <iostream>

#include "core/error.h"
#include "echokv_eval/commands.h"
#include "io/safetensors.h"
#include "model/session.h"

namespace echokv {

Command add_logits_command(CLI::App& app) {
  struct Opts {
    RuntimeFlags rt;
    std::string model_dir, ids_text, out_path;
    CacheFlags cache;
    int64_t chunk = 512;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("logits", "write logits [T, vocab] float32 for a token sequence");
  cmd->add_option("--model", o->model_dir, "HF model folder")->required();
  cmd->add_option("--ids", o->ids_text, "token ids, e.g. 1,2,3")->required();
  cmd->add_option("--out", o->out_path, "output .safetensors (tensor 'logits')")->required();
  cmd->add_option("--chunk", o->chunk, "prefill chunk size")->capture_default_str();
  add_cache_flags(cmd, o->cache);
  add_runtime_flags(cmd, o->rt);
  return {cmd, [o]() {
    auto ids = parse_id_list(o->ids_text);
    auto model = load_model_for_run(o->model_dir, o->rt.device, o->rt.dtype, o->rt.threads);
    auto method = online_method(o->cache, *model, o->model_dir);
    auto cache = method->make_cache(*model, static_cast<int64_t>(ids.size()), static_cast<int64_t>(ids.size()));
    auto logits = sequence_logits(*model, ids, o->chunk, *cache);
    std::cerr << o->cache.kind << " cache: " << cache_report_line(*cache) << "\n";
    save_safetensors(o->out_path, {{"logits", logits.contiguous()}});
    std::cerr << "wrote logits " << logits.size(0) << "x" << logits.size(1) << " to " << o->out_path << "\n";
    return 0;
  }};
}

}  // namespace echokv
