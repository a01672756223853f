#include "echokv_eval/commands.h"

#include "core/error.h"

namespace echokv {

void add_runtime_flags(CLI::App* cmd, RuntimeFlags& rt) {
  cmd->add_option("--device", rt.device, "cpu | cuda | cuda:N")->capture_default_str();
  cmd->add_option("--dtype", rt.dtype, "compute dtype: float32 | bfloat16 | float16 (GPU)")->capture_default_str();
  cmd->add_option("--threads", rt.threads, "CPU threads (0 = ECHOKV_THREADS or all cores)");
}

void add_cache_flags(CLI::App* cmd, CacheFlags& f) {
  cmd->add_option("--cache", f.kind, "KV cache: full | echo | low_rank (Palu-style SVD) | streaming (StreamingLLM)")->capture_default_str();
  cmd->add_option("--rank-ratio", f.low_rank.ratio, "low_rank: stored / full bytes (rank = ratio x group width)")
      ->capture_default_str();
  cmd->add_option("--window", f.streaming.window_tokens, "streaming: recent tokens kept (with --sink)")
      ->capture_default_str();
  cmd->add_option("--group-heads", f.low_rank.group_heads, "low_rank: KV heads per SVD group (0 = whole layer)")
      ->capture_default_str();
  cmd->add_option("--echo", f.echo_dir, "trained EchoKV folder (echokv-train echo) for --cache echo");
  cmd->add_option("--sink", f.echo.sink_tokens, "echo / streaming: uncompressed first tokens")->capture_default_str();
  cmd->add_option("--recent", f.echo.recent_tokens, "echo: uncompressed recent tokens")->capture_default_str();
  cmd->add_option("--echo-chunk", f.echo.chunk_tokens, "echo: tokens rebuilt per attention block")->capture_default_str();
}

void require_online_cache(const CacheFlags& f) {
  if (f.kind == "kvzip" || f.kind == "snapkv" || f.kind == "think" || f.kind == "hybrid" || f.kind == "echo_kvzip")
    throw Error("--cache " + f.kind + " scores a prompt's context before compressing it; run it from an eval config " +
                "(echokv-eval --config FILE with a method 'cache: " + f.kind + "')");
}

}  // namespace echokv
