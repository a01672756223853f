#include <iostream>

#include "core/error.h"
#include "echokv_eval/commands.h"
#include "io/safetensors.h"
#include "model/session.h"

namespace echokv {

Command add_logits_command(CLI::App& app) {
  struct Opts {
    RuntimeFlags rt;
    std::string model_dir, ids_text, out_path, cache_kind = "full";
    int64_t chunk = 512;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("logits", "write logits [T, vocab] float32 for a token sequence");
  cmd->add_option("--model", o->model_dir, "HF model folder")->required();
  cmd->add_option("--ids", o->ids_text, "token ids, e.g. 1,2,3")->required();
  cmd->add_option("--out", o->out_path, "output .safetensors (tensor 'logits')")->required();
  cmd->add_option("--chunk", o->chunk, "prefill chunk size")->capture_default_str();
  cmd->add_option("--cache", o->cache_kind, "full")->capture_default_str();
  add_runtime_flags(cmd, o->rt);
  return {cmd, [o]() {
    if (o->cache_kind != "full") throw Error("--cache '" + o->cache_kind + "': only 'full' is available in this build");
    auto ids = parse_id_list(o->ids_text);
    auto model = load_model_for_run(o->model_dir, o->rt.device, o->rt.dtype, o->rt.threads);
    auto logits = sequence_logits(*model, ids, o->chunk);
    save_safetensors(o->out_path, {{"logits", logits.contiguous()}});
    std::cerr << "wrote logits " << logits.size(0) << "x" << logits.size(1) << " to " << o->out_path << "\n";
    return 0;
  }};
}

}  // namespace echokv
