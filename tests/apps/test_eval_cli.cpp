// The echokv-eval binary end to end: logits to a file, generation as JSON, clear errors.
#include <array>
#include <cstdio>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

struct Run {
  int status;
  std::string out;  // stdout + stderr
};

Run run(const std::string& args) {
  const std::string cmd = std::string(ECHOKV_BINARY_DIR) + "/bin/echokv-eval " + args + " 2>&1";
  Run r{0, ""};
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p)) r.out += buf.data();
  r.status = pclose(p);
  return r;
}

std::string ids_csv(const torch::Tensor& t) {
  std::string s;
  for (int64_t i = 0; i < t.numel(); ++i) s += (i ? "," : "") + std::to_string(t[i].item<int64_t>());
  return s;
}

TEST(EvalCli, LogitsMatchStories260KReference) {
  const std::string dir = require_fixture("fixtures/reference/stories260K");
  auto expected = load_safetensors(dir + "/expected.safetensors");
  auto ids = expected.at("sampled_ids")[1].narrow(0, 0, 100);
  TempDir tmp;
  auto r = run("logits --model " + dir + " --ids " + ids_csv(ids) + " --chunk 33 --out " + tmp.file("l.safetensors"));
  ASSERT_EQ(r.status, 0) << r.out;
  auto got = load_safetensors(tmp.file("l.safetensors")).at("logits");
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{100, 512}));
  EXPECT_LE(max_abs_diff(got, expected.at("sampled_logits")[1].narrow(0, 0, 100)), 1e-4);
}

TEST(EvalCli, GenerateJsonMatchesReferenceGreedy) {
  const std::string dir = require_fixture("fixtures/reference/stories260K");
  auto want = load_safetensors(dir + "/expected.safetensors").at("greedy_from_bos");
  auto r = run("generate --model " + dir + " --ids 1 --max-new-tokens 64 --greedy --json --stop-ids 100000");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out, "{\"ids\":[" + ids_csv(want.narrow(0, 1, 64)) + "]}\n");
}

TEST(EvalCli, BadInputGivesOneClearLineAndNonZeroExit) {
  const std::string dir = require_fixture("fixtures/reference/stories260K");
  for (const std::string& args : std::vector<std::string>{"logits --model /no/such/dir --ids 1 --out /tmp/x.safetensors",
                                  "generate --model " + dir + " --ids 1,zz", "generate --model " + dir + " --ids 99999",
                                  "generate --model " + dir + " --ids 1 --cache bogus"}) {
    auto r = run(args);
    EXPECT_NE(r.status, 0) << args;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find("echokv-eval: error: "), std::string::npos) << r.out;
  }
  EXPECT_EQ(run("--help").status, 0);
}

}  // namespace

TEST(CliErrors, AMisspeltFlagIsOneLineNamingTheCommandsHelp) {
  const auto r = run_binary("echokv-eval", "generate --model x --ids 1 --max-new-tokns 4");
  EXPECT_EQ(WEXITSTATUS(r.status), 2) << r.out;
  EXPECT_NE(r.out.find("echokv-eval: error: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--max-new-tokns"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("see 'echokv-eval generate --help'"), std::string::npos) << r.out;
  const auto help = run_binary("echokv-eval", "generate --help");
  EXPECT_EQ(WEXITSTATUS(help.status), 0);
  const auto plan = run_binary("echokv-analyze", "plan --stats s --model m --ratio 1.5 --out p.json");
  EXPECT_NE(WEXITSTATUS(plan.status), 0);
  EXPECT_NE(plan.out.find("--ratio must be in (0, 1]"), std::string::npos) << plan.out;
  const auto train = run_binary("echokv-train", "pretrain --confg x.yaml");
  EXPECT_EQ(WEXITSTATUS(train.status), 2) << train.out;
  EXPECT_NE(train.out.find("see 'echokv-train pretrain --help'"), std::string::npos) << train.out;
}
