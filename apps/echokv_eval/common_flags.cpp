#include "echokv_eval/commands.h"

namespace echokv {

void add_runtime_flags(CLI::App* cmd, RuntimeFlags& rt) {
  cmd->add_option("--device", rt.device, "cpu | cuda | cuda:N")->capture_default_str();
  cmd->add_option("--dtype", rt.dtype, "compute dtype: float32 | bfloat16 | float16 (GPU)")->capture_default_str();
  cmd->add_option("--threads", rt.threads, "CPU threads (0 = ECHOKV_THREADS or all cores)");
}

}  // namespace echokv
