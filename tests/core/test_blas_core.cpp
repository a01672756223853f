// BLAS core selection: generic cores are recognised, a core given in the environment is never
// replaced, and a core chosen by echokv is checked against float64 before it is reported.
#include <gtest/gtest.h>

#include "core/blas_core.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

TEST(BlasCore, GenericCoresAreTheFallbackKernels) {
  for (const char* c : {"Prescott", "prescott", "Core2", "Nehalem", "Atom"}) EXPECT_TRUE(is_generic_blas_core(c)) << c;
  for (const char* c : {"SkylakeX", "Haswell", "Cooperlake", "Zen", "Sandybridge", ""})
    EXPECT_FALSE(is_generic_blas_core(c)) << c;
  const std::string best = best_blas_core_for_cpu();
  EXPECT_TRUE(best.empty() || best == "SkylakeX" || best == "Haswell") << best;
}

TEST(BlasCore, ACoreFromTheEnvironmentIsNeverOverridden) {
  // Prescott runs on every x86-64 CPU, so asking for it is always valid.
  const auto r = run_binary("echokv-eval", "--version");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("BLAS core:"), std::string::npos) << r.out;
  const auto forced = run_binary("echokv-eval", "--version", "env -u ECHOKV_BLAS_CORE OPENBLAS_CORETYPE=Prescott");
  ASSERT_EQ(forced.status, 0) << forced.out;
  if (forced.out.find("OpenBLAS") == std::string::npos) GTEST_SKIP() << "BLAS is not OpenBLAS: " << forced.out;
  EXPECT_NE(forced.out.find("BLAS core: Prescott (OPENBLAS_CORETYPE=Prescott set by the user or the machine)"),
            std::string::npos)
      << forced.out;
}

TEST(BlasCore, AChosenCoreIsVerifiedAgainstFloat64BeforeItIsTrusted) {
  // As after echokv's own re-execution: the chosen core's GEMM is checked, then reported.
  const auto r = run_binary("echokv-eval", "--version",
                            "env OPENBLAS_CORETYPE=Prescott ECHOKV_BLAS_CORE=chosen:Prescott:Katmai");
  ASSERT_EQ(r.status, 0) << r.out;
  if (r.out.find("OpenBLAS") == std::string::npos) GTEST_SKIP() << "BLAS is not OpenBLAS: " << r.out;
  EXPECT_NE(r.out.find("OPENBLAS_CORETYPE=Prescott chosen by echokv"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("GEMM checked against float64"), std::string::npos) << r.out;
}
