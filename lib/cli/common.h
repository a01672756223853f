// Helpers every command-line app shares: one error line and a non-zero exit on failure,
// runtime flags (threads, device, dtype), id-list parsing.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace echokv {

struct RuntimeFlags {
  int threads = 0;              // 0 = ECHOKV_THREADS or all cores
  std::string device = "cpu";
  std::string dtype = "float32";
};

// What `--version` prints: version, LibTorch (and whether it has CUDA), BLAS library and core.
std::string version_text(const std::string& app);

// Runs `body`, printing "<app>: error: <message>" and returning 1 on any exception.
int run_app(const std::string& app, const std::function<int()>& body);

// "1,2,3" or "1 2 3" -> ids; throws a clear Error on anything else.
std::vector<int64_t> parse_id_list(const std::string& text, const std::string& what = "--ids");

std::string ids_to_json(const std::vector<int64_t>& ids);

}  // namespace echokv
