// echokv-eval with text: tokenize, and generate --prompt [--chat] streaming text, on a small
// random model whose folder carries Llama 2's real tokenizer.
#include <array>
#include <cstdio>
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/model_test_util.h"
#include "model/random_model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

std::string run_eval(const std::string& args, int* status = nullptr) {
  const std::string cmd = std::string(ECHOKV_BINARY_DIR) + "/bin/echokv-eval " + args + " 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), p)) out += buf.data();
  const int rc = pclose(p);
  if (status) *status = rc;
  else EXPECT_EQ(rc, 0) << args << "\n" << out;
  return out;
}

std::string quoted(const std::string& s) { return "'" + s + "'"; }

class TextCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string tok = require_fixture("fixtures/tokenizers/llama2/tokenizer.model");
    auto cfg = tiny_config();
    cfg.vocab_size = 32000;
    cfg.hidden_size = 16;
    cfg.num_attention_heads = 2;
    cfg.num_key_value_heads = 1;
    cfg.head_dim = 8;
    cfg.intermediate_size = 32;
    cfg.num_hidden_layers = 2;
    cfg.bos_token_ids = {1};
    cfg.eos_token_ids = {2};
    // Large init so sampling spreads over many tokens (bytes, spaces, words).
    save_model_folder(dir_.path(), cfg, random_llama_tensors(cfg, 3, 0.5));
    std::filesystem::copy_file(tok, dir_.file("tokenizer.model"));
  }
  TempDir dir_;
};

TEST_F(TextCli, TokenizeMatchesTheLibraryIds) {
  auto out = run_eval("tokenize --model " + dir_.path() + " --text " + quoted("Hello world") + " --bos --json");
  EXPECT_EQ(out, "{\"ids\":[1,15043,3186]}\n");
}

TEST_F(TextCli, StreamedTextEqualsDecodedIds) {
  auto tok = load_tokenizer(dir_.path());
  const std::string common = "generate --model " + dir_.path() + " --prompt " + quoted("Once upon a time") +
                             " --sample --seed 11 --temperature 1.5 --max-new-tokens 40 --stop-ids 999999";
  auto json = nlohmann::json::parse(run_eval(common + " --json"));
  auto ids = json["ids"].get<std::vector<int64_t>>();
  ASSERT_EQ(ids.size(), 40u);
  // The stream prints the continuation of the prompt's last token, keeping leading spaces.
  auto prompt = tok->encode("Once upon a time", true);
  std::vector<int64_t> with_context = {prompt.back()};
  with_context.insert(with_context.end(), ids.begin(), ids.end());
  const std::string context_text = tok->decode({prompt.back()});
  const std::string want = tok->decode(with_context).substr(context_text.size());
  EXPECT_EQ(run_eval(common), want + "\n");
  EXPECT_EQ(json["text"].get<std::string>(), tok->decode(ids));
}

TEST_F(TextCli, ChatPromptUsesTheTemplate) {
  auto tok = load_tokenizer(dir_.path());
  ChatOptions co;
  co.format = ChatFormat::kLlama2;
  auto prompt = render_chat(*tok, {{"system", "Be brief."}, {"user", "Hi"}}, co);
  // Greedy continuation of the templated prompt equals --ids with the same tokens.
  std::string ids_csv;
  for (auto id : prompt) ids_csv += (ids_csv.empty() ? "" : ",") + std::to_string(id);
  auto a = nlohmann::json::parse(run_eval("generate --model " + dir_.path() + " --prompt Hi --chat --chat-template llama2 --system " +
                                          quoted("Be brief.") + " --max-new-tokens 6 --json"));
  auto b = nlohmann::json::parse(run_eval("generate --model " + dir_.path() + " --ids " + ids_csv + " --max-new-tokens 6 --json"));
  EXPECT_EQ(a["ids"], b["ids"]);
  int status = 0;
  auto err = run_eval("generate --model " + dir_.path() + " --prompt Hi --chat --chat-template chatml", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(err.find("chatml"), std::string::npos);
}

}  // namespace
