#include "core/blas_core.h"

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <iostream>

#include <torch/torch.h>

namespace echokv {

namespace {

// The marker this process family keeps in the environment: "chosen:<core>:<was>",
// "verified:<core>:<was>" or "rejected:<core>:<was>".
constexpr const char* kMarker = "ECHOKV_BLAS_CORE";

std::string call_string_fn(const char* symbol) {
  using Fn = char* (*)();
  auto fn = reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, symbol));
  if (!fn) return "";
  const char* s = fn();
  std::string out = s ? s : "";
  while (!out.empty() && std::isspace(static_cast<unsigned char>(out.back()))) out.pop_back();
  return out;
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string marker_field(const std::string& marker, int index) {
  size_t start = 0;
  for (int i = 0; i < index; ++i) {
    start = marker.find(':', start);
    if (start == std::string::npos) return "";
    ++start;
  }
  return marker.substr(start, marker.find(':', start) - start);
}

// One float32 GEMM through LibTorch (so through the BLAS in use) against float64 loops.
bool gemm_matches_float64() {
  torch::NoGradGuard no_grad;
  const int64_t m = 67, k = 131, n = 45;  // odd sizes: edge kernels too
  auto gen = at::detail::createCPUGenerator(20261201);
  auto a = at::randn({m, k}, gen, torch::kFloat32), b = at::randn({k, n}, gen, torch::kFloat32);
  auto c = torch::mm(a, b);
  auto aa = a.accessor<float, 2>(), ba = b.accessor<float, 2>(), ca = c.accessor<float, 2>();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double want = 0, mag = 0;
      for (int64_t p = 0; p < k; ++p) {
        want += double(aa[i][p]) * double(ba[p][j]);
        mag += std::abs(double(aa[i][p]) * double(ba[p][j]));
      }
      if (!(std::abs(double(ca[i][j]) - want) <= 1e-5 * mag + 1e-6)) return false;
    }
  return true;
}

}  // namespace

bool is_generic_blas_core(const std::string& core) {
  static const char* generic[] = {"prescott", "core2", "penryn", "dunnington", "nehalem", "atom",
                                  "katmai", "coppermine", "northwood", "banias", "generic"};
  const std::string c = lower(core);
  return std::any_of(std::begin(generic), std::end(generic), [&](const char* g) { return c == g; });
}

std::string best_blas_core_for_cpu() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return "";
}

bool choose_blas_core_before_exec() {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv(kMarker)) return false;  // never override a given value
  const std::string core = call_string_fn("openblas_get_corename");
  if (core.empty() || !is_generic_blas_core(core)) return false;
  const std::string best = best_blas_core_for_cpu();
  if (best.empty()) return false;
  ::setenv("OPENBLAS_CORETYPE", best.c_str(), 1);
  ::setenv(kMarker, ("chosen:" + best + ":" + core).c_str(), 1);
  return true;
}

bool verify_chosen_blas_core() {
  const std::string marker = env_or_empty(kMarker);
  if (marker.rfind("chosen:", 0) != 0) return false;
  const std::string core = marker_field(marker, 1), was = marker_field(marker, 2);
  if (gemm_matches_float64()) {
    ::setenv(kMarker, ("verified:" + core + ":" + was).c_str(), 1);
    return false;
  }
  std::cerr << "warning: OpenBLAS kernels " << core << " (chosen for this CPU instead of the generic " << was
            << ") disagree with a float64 GEMM check; using OpenBLAS's own choice" << std::endl;
  ::unsetenv("OPENBLAS_CORETYPE");
  ::setenv(kMarker, ("rejected:" + core + ":" + was).c_str(), 1);
  return true;
}

BlasInfo blas_info() {
  BlasInfo info;
  info.library = call_string_fn("openblas_get_config");
  info.core = call_string_fn("openblas_get_corename");
  if (info.library.empty()) info.library = "unknown (not OpenBLAS)";
  const std::string marker = env_or_empty(kMarker);
  if (marker.rfind("verified:", 0) == 0 || marker.rfind("chosen:", 0) == 0) {
    info.chosen = "echokv";
    info.detail = "OPENBLAS_CORETYPE=" + marker_field(marker, 1) + " chosen by echokv (OpenBLAS detected the generic " +
                  marker_field(marker, 2) + " on a CPU with " + marker_field(marker, 1) +
                  "-class vector units; GEMM checked against float64)";
  } else if (marker.rfind("rejected:", 0) == 0) {
    info.chosen = "echokv-rejected";
    info.detail = marker_field(marker, 1) + " failed the float64 GEMM check; OpenBLAS's own " + info.core + " in use";
  } else if (!env_or_empty("OPENBLAS_CORETYPE").empty()) {
    info.chosen = "environment";
    info.detail = "OPENBLAS_CORETYPE=" + env_or_empty("OPENBLAS_CORETYPE") + " set by the user or the machine";
  } else {
    info.chosen = "openblas";
    info.detail = info.core.empty() ? "BLAS core unknown" : "OpenBLAS's own detection";
  }
  return info;
}

nlohmann::json blas_info_json() {
  const auto b = blas_info();
  return {{"library", b.library}, {"core", b.core}, {"chosen", b.chosen}, {"detail", b.detail}};
}

}  // namespace echokv
