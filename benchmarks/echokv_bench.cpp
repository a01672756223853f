// echokv-bench: benchmarks that print JSON (and write it with --out).
#include <CLI/CLI.hpp>

#include "cli/parse_errors.h"
#include "bench_commands.h"
#include "cli/common.h"
#include "core/runtime.h"

int main(int argc, char** argv) {
  echokv::prepare_process(argc, argv);
  return echokv::run_app("echokv-bench", [&]() -> int {
    CLI::App app{"EchoKV-cpp benchmarks (JSON output)"};
    app.set_version_flag("--version", [] { return echokv::version_text("echokv-bench"); });
    app.require_subcommand(1);
    int threads = 0;
    app.add_option("--threads", threads, "CPU threads (0 = ECHOKV_THREADS or all cores)");
    echokv::register_model_bench(app, threads);
    echokv::register_tokenizer_bench(app);
    echokv::register_train_step_bench(app, threads);
    echokv::register_echo_train_bench(app, threads);
    echokv::register_echo_decode_bench(app, threads);
    echokv::register_kvzip_decode_bench(app, threads);
    echokv::register_echo_switch_bench(app, threads);
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return echokv::report_parse_error("echokv-bench", app, e);
    }
    return 0;
  });
}
