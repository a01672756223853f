// Which BLAS this process runs and which of its CPU kernels ("core"). Debian 12's OpenBLAS
// 0.3.21 does not recognise some current CPUs (a VM reporting "Intel(R) Xeon(R) Processor"
// with AVX-512) and falls back to its Prescott kernels, ~5x below the machine on float32
// GEMM. prepare_process (core/runtime.h) then picks the kernels the CPU supports (SkylakeX
// with AVX-512, Haswell with AVX2 + FMA), checks one GEMM against float64 before trusting
// them, and falls back (saying so) if it disagrees. A value of OPENBLAS_CORETYPE that the
// user or the machine set is never overridden.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace echokv {

struct BlasInfo {
  std::string library;  // "OpenBLAS 0.3.21 DYNAMIC_ARCH ..." (openblas_get_config), or "unknown"
  std::string core;     // the kernels in use (openblas_get_corename), "" if not OpenBLAS
  std::string chosen;   // "openblas" (its own detection), "environment" (OPENBLAS_CORETYPE given),
                        // "echokv" (chosen here, GEMM checked), "echokv-rejected" (check failed)
  std::string detail;   // one line for people
};

BlasInfo blas_info();
nlohmann::json blas_info_json();

// True for OpenBLAS's pre-AVX fallback kernels (Prescott, Core2, Nehalem, ...).
bool is_generic_blas_core(const std::string& core);
// The OpenBLAS core for this CPU's vector extensions: "SkylakeX", "Haswell" or "".
std::string best_blas_core_for_cpu();

// Steps of prepare_process. Returns true when the environment was changed so that the
// process must re-execute itself (OpenBLAS reads OPENBLAS_CORETYPE only when loaded).
bool choose_blas_core_before_exec();
// After a re-exec with a chosen core: checks a GEMM against float64 loops; on disagreement
// clears the choice and returns true (re-execute once more with OpenBLAS's own choice).
bool verify_chosen_blas_core();

}  // namespace echokv
