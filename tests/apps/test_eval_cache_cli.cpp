// echokv-eval with --cache echo: the same commands run the EchoKV cache from a trained
// folder, report stored bytes, and refuse folders made for another model.
#include <gtest/gtest.h>

#include "echo/reconstructor.h"
#include "io/model_fingerprint.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

TEST(EvalCacheCli, LogitsAndGenerateWithTheEchoCache) {
  const std::string model = require_fixture("fixtures/reference/stories260K");
  TempDir tmp;
  const auto mc = ModelConfig::load(model);
  Reconstructor r(HeadPlan::paper_for_ratio({mc.num_hidden_layers, mc.num_key_value_heads, mc.head_dim}, 0.5, 4),
                  true, 1);
  r.save(tmp.file("echo"), {{"base_model", model}, {"base_model_fingerprint", model_fingerprint(model)}});
  std::string ids = "1";
  for (int i = 0; i < 40; ++i) ids += "," + std::to_string(100 + 7 * i);
  auto full = run_binary("echokv-eval", "logits --model " + model + " --ids " + ids + " --out " + tmp.file("full.safetensors"));
  ASSERT_EQ(full.status, 0) << full.out;
  auto echo = run_binary("echokv-eval", "logits --model " + model + " --ids " + ids + " --cache echo --echo " +
                                            tmp.file("echo") + " --sink 2 --recent 8 --chunk 4 --out " + tmp.file("echo.safetensors"));
  ASSERT_EQ(echo.status, 0) << echo.out;
  EXPECT_NE(echo.out.find("echo cache: stored"), std::string::npos) << echo.out;
  auto a = load_safetensors(tmp.file("full.safetensors")).at("logits");
  auto b = load_safetensors(tmp.file("echo.safetensors")).at("logits");
  // Prefill chunks of 4 with recent 8: chunks [0,4) .. [8,12) see only exact tokens; from the
  // chunk [12,16) on, tokens 2.. leave the window and are rebuilt (random maps here).
  EXPECT_LE(max_abs_diff(a.slice(0, 0, 12), b.slice(0, 0, 12)), 1e-4);
  EXPECT_GT(max_abs_diff(a.slice(0, 12), b.slice(0, 12)), 1e-3);
  auto gen = run_binary("echokv-eval", "generate --model " + model + " --ids 1 --max-new-tokens 40 --greedy --json "
                                       "--cache echo --recent 8 --echo " + tmp.file("echo"));
  ASSERT_EQ(gen.status, 0) << gen.out;
  EXPECT_NE(gen.out.find("\"ids\""), std::string::npos) << gen.out;
}

TEST(EvalCacheCli, BadEchoFlagsAreClearErrors) {
  const std::string model = require_fixture("fixtures/reference/stories260K");
  TempDir tmp;
  auto r = run_binary("echokv-eval", "logits --model " + model + " --ids 1,2 --cache echo --out " + tmp.file("x"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("needs --echo DIR"), std::string::npos) << r.out;
  r = run_binary("echokv-eval", "logits --model " + model + " --ids 1,2 --cache zip --out " + tmp.file("x"));
  EXPECT_NE(r.out.find("--cache must be full, echo, low_rank, streaming, kvzip, snapkv, think, hybrid, echo_kvzip"), std::string::npos) << r.out;
  // Prompt-scoring methods live in eval configs; the token-by-token commands say so.
  r = run_binary("echokv-eval", "generate --model " + model + " --ids 1,2 --cache kvzip --max-new-tokens 2");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("run it from an eval config"), std::string::npos) << r.out;
  const auto mc = ModelConfig::load(model);
  Reconstructor rec(HeadPlan::paper_for_ratio({mc.num_hidden_layers, mc.num_key_value_heads, mc.head_dim}, 0.5, 4),
                    true, 1);
  rec.save(tmp.file("other"), {{"base_model", "elsewhere"}, {"base_model_fingerprint", "0123456789abcdef"}});
  r = run_binary("echokv-eval", "logits --model " + model + " --ids 1,2 --cache echo --echo " + tmp.file("other") +
                                    " --out " + tmp.file("x"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("trained for another base model"), std::string::npos) << r.out;
}
