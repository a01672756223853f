// The three real tokenizers against expected ids from their reference implementations
// (../shared/fixtures/tokenizers/*/expected.json).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/files.h"
#include "tokenizer/tokenizer.h"
#include "test_support.h"

using namespace echokv;
using echokv::testing::require_fixture;

namespace {

class TokenizerFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerFixture, AllCasesEncodeToExpectedIdsAndRoundTrip) {
  const std::string dir = require_fixture("fixtures/tokenizers/" + GetParam());
  auto tok = load_tokenizer(dir + "/tokenizer.model");
  auto expected = nlohmann::json::parse(read_text_file(dir + "/expected.json"));
  ASSERT_EQ(expected["cases"].size(), 44u);
  int index = 0;
  for (const auto& c : expected["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto want = c["ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(tok->encode(text), want) << "case " << index << ": '" << text << "'";
    EXPECT_EQ(tok->decode(tok->encode(text)), text) << "case " << index;
    if (c.contains("decoded")) {
      EXPECT_EQ(tok->decode(want), c["decoded"].get<std::string>()) << "case " << index;
    }
    ++index;
  }
}

INSTANTIATE_TEST_SUITE_P(Real, TokenizerFixture, ::testing::Values("llama2", "mistral-v3", "llama3"));

TEST(TokenizerFixtures, SpecialIdsAndBos) {
  auto l3 = load_tokenizer(require_fixture("fixtures/tokenizers/llama3/tokenizer.model"));
  EXPECT_EQ(l3->kind(), "tiktoken");
  EXPECT_EQ(l3->vocab_size(), 128256);
  EXPECT_EQ(l3->special_id("<|begin_of_text|>"), 128000);
  EXPECT_EQ(l3->special_id("<|end_of_text|>"), 128001);
  EXPECT_EQ(l3->special_id("<|start_header_id|>"), 128006);
  EXPECT_EQ(l3->special_id("<|end_header_id|>"), 128007);
  EXPECT_EQ(l3->special_id("<|eom_id|>"), 128008);
  EXPECT_EQ(l3->special_id("<|eot_id|>"), 128009);
  EXPECT_EQ(l3->encode("Hi", true).front(), 128000);
  // Special-token text in user input is plain text, never a control token.
  for (int64_t id : l3->encode("<|eot_id|>")) EXPECT_LT(id, 128000);
  EXPECT_EQ(l3->decode({128000, 13347}, false), "<|begin_of_text|>" + l3->decode({13347}));
  EXPECT_EQ(l3->decode({128000, 13347}, true), l3->decode({13347}));

  auto mistral = load_tokenizer(require_fixture("fixtures/tokenizers/mistral-v3/tokenizer.model"));
  EXPECT_EQ(mistral->vocab_size(), 32768);
  EXPECT_EQ(mistral->special_id("[INST]"), 3);
  EXPECT_EQ(mistral->special_id("[/INST]"), 4);
  EXPECT_EQ(mistral->bos_id(), 1);
  EXPECT_EQ(mistral->eos_id(), 2);
  // "[INST]" typed by a user is ordinary text.
  for (int64_t id : mistral->encode("[INST]")) EXPECT_NE(id, 3);

  auto llama2 = load_tokenizer(require_fixture("fixtures/tokenizers/llama2/tokenizer.model"));
  EXPECT_EQ(llama2->kind(), "sentencepiece-bpe");
  EXPECT_EQ(llama2->encode("Hello", true).front(), 1);
  EXPECT_EQ(llama2->encode("\n"), (std::vector<int64_t>{29871, 13}));  // "▁" then byte <0x0A>
}

}  // namespace
