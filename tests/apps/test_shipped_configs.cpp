// Every YAML experiment shipped under configs/ parses under the strict loaders (a typo in a
// shipped config would otherwise surface only when a user runs it).
#include <filesystem>

#include <gtest/gtest.h>

#include "analysis/analyze_config.h"
#include "eval/eval_config.h"
#include "train/echo_train_config.h"
#include "test_support.h"

using namespace echokv;

namespace {
std::vector<std::string> yaml_files(const std::string& folder) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(echokv::testing::source_dir() + "/configs/" + folder))
    if (e.path().extension() == ".yaml") out.push_back(e.path().string());
  return out;
}
}  // namespace

TEST(ShippedConfigs, EchoTrainingConfigsParse) {
  const auto files = yaml_files("echo");
  EXPECT_GE(files.size(), 8u);  // 2 models x 3 ratios + stories260K + testbed
  for (const auto& f : files) EXPECT_NO_THROW(EchoTrainConfig::load(f)) << f;
}

TEST(ShippedConfigs, AnalysisConfigsParse) {
  for (const auto& f : yaml_files("analysis")) EXPECT_NO_THROW(AnalyzeConfig::load(f)) << f;
}

TEST(ShippedConfigs, EvalConfigsParse) {
  const auto files = yaml_files("eval");
  EXPECT_GE(files.size(), 3u);  // testbed, testbed-main, stories260k
  for (const auto& f : files) EXPECT_NO_THROW(EvalConfig::load(f)) << f;
}
