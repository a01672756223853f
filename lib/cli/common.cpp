#include "cli/common.h"

#include <cctype>
#include <iostream>

#include <nlohmann/json.hpp>

#include "core/blas_core.h"
#include "core/error.h"
#include "core/torch_compat.h"
#include "echokv_build_config.h"

namespace echokv {

std::string version_text(const std::string& app) {
  const auto blas = blas_info();
  return app + " (EchoKV-cpp) " + ECHOKV_VERSION + "\nLibTorch " + compat::torch_version() +
         (compat::built_with_cuda() ? " with CUDA" : " (CPU only)") +
         (compat::kHasFusedAttention ? ", fused attention" : ", no fused attention") + "\nBLAS: " + blas.library +
         "\nBLAS core: " + (blas.core.empty() ? "unknown" : blas.core) + " (" + blas.detail + ")";
}

int run_app(const std::string& app, const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::cerr << app << ": error: " << e.what() << std::endl;
  } catch (const c10::Error& e) {
    std::cerr << app << ": error: " << e.what_without_backtrace() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << app << ": error: " << e.what() << std::endl;
  }
  return 1;
}

std::vector<int64_t> parse_id_list(const std::string& text, const std::string& what) {
  std::vector<int64_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ',' || std::isspace(static_cast<unsigned char>(text[i])))) ++i;
    if (i >= text.size()) break;
    size_t j = i;
    if (text[j] == '-') ++j;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j == i || (j == i + 1 && text[i] == '-') ||
        (j < text.size() && text[j] != ',' && !std::isspace(static_cast<unsigned char>(text[j]))))
      throw Error(what + ": expected comma-separated integers, got '" + text + "'");
    const int64_t id = std::stoll(text.substr(i, j - i));
    if (id < 0) throw Error(what + ": token ids must be non-negative, got " + std::to_string(id));
    ids.push_back(id);
    i = j;
  }
  if (ids.empty()) throw Error(what + ": no token ids given");
  return ids;
}

std::string ids_to_json(const std::vector<int64_t>& ids) { return nlohmann::json{{"ids", ids}}.dump(); }

}  // namespace echokv
