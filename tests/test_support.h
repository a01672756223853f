// Shared helpers for tests: where ../shared lives, temporary folders, tensor comparison.
#pragma once
#include <array>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"

namespace echokv::testing {

// ECHOKV_SHARED, or <repo>/../shared. A missing fixture fails the test loudly.
inline std::string shared_dir() {
  if (const char* env = std::getenv("ECHOKV_SHARED")) return env;
  return ECHOKV_SHARED_DEFAULT;
}

inline std::string require_fixture(const std::string& relative) {
  const std::string path = shared_dir() + "/" + relative;
  if (!std::filesystem::exists(path))
    throw std::runtime_error("fixture missing: " + path +
                             " (set ECHOKV_SHARED to the shared/ folder; tests never pass without it)");
  return path;
}

inline std::string source_dir() { return ECHOKV_SOURCE_DIR; }

// A fresh empty folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "echokv-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandRun {
  int status = 0;
  std::string out;  // stdout + stderr
};

// Runs build/bin/<binary> with `args` (shell words), capturing stdout and stderr; `prefix`
// (shell words, e.g. "env X=1") goes before the binary.
inline CommandRun run_binary(const std::string& binary, const std::string& args, const std::string& prefix = "") {
  const std::string cmd =
      (prefix.empty() ? "" : prefix + " ") + std::string(ECHOKV_BINARY_DIR) + "/bin/" + binary + " " + args + " 2>&1";
  CommandRun r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p)) r.out += buf.data();
  r.status = pclose(p);
  return r;
}

// The message of the echokv::Error `f` throws, or "" when it throws none (any other
// exception propagates and fails the test).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const echokv::Error& e) {
    return e.what();
  }
  return "";
}

// The devices numerics tests run on: ECHOKV_TEST_DEVICES ("cpu,cuda", "cuda:1", ...) when set,
// else the CPU and, when LibTorch sees one, the first CUDA device. A device asked for but not
// usable fails the test (never a silent CPU-only pass).
inline std::vector<torch::Device> test_devices() {
  std::vector<std::string> names;
  if (const char* env = std::getenv("ECHOKV_TEST_DEVICES"); env && *env) {
    std::string list = env, item;
    for (size_t i = 0; i <= list.size(); ++i) {
      if (i == list.size() || list[i] == ',') {
        if (!item.empty()) names.push_back(item);
        item.clear();
      } else if (list[i] != ' ') {
        item += list[i];
      }
    }
  } else {
    names = {"cpu"};
    if (torch::cuda::is_available()) names.push_back("cuda");
  }
  std::vector<torch::Device> out;
  for (const auto& n : names) {
    const torch::Device d(n);
    if (d.is_cuda() && (!torch::cuda::is_available() || (d.has_index() && d.index() >= int(torch::cuda::device_count()))))
      throw std::runtime_error("ECHOKV_TEST_DEVICES names " + n + " but LibTorch has no such CUDA device");
    out.push_back(d);
  }
  if (out.empty()) throw std::runtime_error("ECHOKV_TEST_DEVICES is set but names no device");
  return out;
}

// Tolerances per compute dtype, stated once: float32 is what the independent reference
// itself meets (1e-4 on logits); bfloat16 compute (8-bit mantissa, fp32 accumulation in
// norms and softmax) is held to 5e-2 relative to the logits' scale.
inline double logit_tolerance(torch::ScalarType compute, double logit_scale) {
  return compute == torch::kBFloat16 ? 5e-2 * std::max(1.0, logit_scale) : 1e-4;
}

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace echokv::testing
