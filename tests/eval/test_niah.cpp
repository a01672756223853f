// NIAH setups by name (Kamradt, RULER, kvpress, custom): their prompt shapes, sizes and
// metrics, several samples per cell, and whole-word scoring that gives no false credit.
#include <regex>
#include <set>

#include <gtest/gtest.h>

#include "eval/niah.h"
#include "eval/py_text.h"
#include "eval/ruler_template.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

using namespace echokv;
using echokv::testing::require_fixture;

namespace {

const Tokenizer& llama2() {
  static auto tok = load_tokenizer(require_fixture("fixtures/tokenizers/llama2/tokenizer.model"));
  return *tok;
}

NiahConfig config(const std::string& setup) {
  NiahConfig c;
  c.setup = setup;
  c.haystack_path = require_fixture("data/ruler/PaulGrahamEssays.json");
  c.lengths = {1024, 2048};
  c.depths = {0, 50, 100};
  c.samples_per_cell = 2;
  return c;
}

bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

const std::vector<std::string> kKamradtKeywords = {"eat", "sandwich", "sit", "dolores", "park", "sunny", "day"};

}  // namespace

TEST(Niah, KeywordRecallCountsWholeWordsOnly) {
  NiahConfig c = config("kamradt");
  c.resolve();
  EXPECT_EQ(niah_keywords(c), kKamradtKeywords);
  // "great" holds "eat", "visit" holds "sit": no credit for either (substrings gave 5/7)
  EXPECT_NEAR(niah_keyword_recall("I would visit the Golden Gate Park on a great sunny day.", kKamradtKeywords), 3.0 / 7.0, 1e-12);
  EXPECT_NEAR(niah_keyword_recall("Eat a sandwich in Dolores Park.", kKamradtKeywords), 4.0 / 7.0, 1e-12);
  EXPECT_DOUBLE_EQ(niah_keyword_recall("", kKamradtKeywords), 0.0);
  EXPECT_DOUBLE_EQ(niah_keyword_recall("4821333", {"48213"}), 0.0);
  EXPECT_DOUBLE_EQ(niah_keyword_recall("The code is 48213.", {"48213"}), 1.0);
}

TEST(Niah, ConfigRejectsUnknownSetupsAndFillsDefaults) {
  NiahConfig bad = config("needle");
  EXPECT_THROW(bad.resolve(), Error);
  NiahConfig k = config("kamradt");
  k.resolve();
  EXPECT_EQ(k.question, "What is the best thing to do in San Francisco?");
  EXPECT_EQ(k.system, "You are a helpful AI bot that answers questions for a user. Keep your response short and direct");
  EXPECT_EQ(k.tokens_to_generate, 48);
  NiahConfig zero = config("custom");
  zero.samples_per_cell = 0;
  EXPECT_THROW(zero.resolve(), Error);
}

TEST(Niah, KamradtCutsTheHaystackByTokensAndInsertsAtASentenceEnd) {
  ChatOptions chat;
  const auto samples = generate_niah(config("kamradt"), llama2(), chat, 42);
  ASSERT_EQ(samples.size(), 2u * 3u * 2u);
  const std::string tail = "\n</context>\n\nWhat is the best thing to do in San Francisco? Don't give information outside the "
                           "document or repeat your findings";
  std::set<std::string> inputs;
  for (const auto& s : samples) {
    inputs.insert(s.input);
    EXPECT_EQ(s.input.rfind("<context>\n", 0), 0u);
    EXPECT_TRUE(ends_with(s.input, tail));
    EXPECT_EQ(s.outputs, kKamradtKeywords);
    const size_t at = s.input.find("The best thing to do in San Francisco");
    ASSERT_NE(at, std::string::npos);
    // the haystack with its needle: at most L - 200 tokens (re-encoding may move a token or two)
    const std::string haystack = s.input.substr(10, s.input.size() - tail.size() - 10);
    EXPECT_LE(static_cast<int64_t>(llama2().encode(haystack).size()), s.length - 200 + 4);
    EXPECT_GE(static_cast<int64_t>(llama2().encode(haystack).size()), s.length - 200 - 20);
    if (s.depth == 0) {
      EXPECT_LT(at, 16u);
    } else if (s.depth == 100) {
      EXPECT_TRUE(ends_with(s.input.substr(0, s.input.size() - tail.size()), "sunny day.\n"));
    } else {  // backed off to just after a sentence's period
      const std::string before = py::strip(s.input.substr(0, at));
      EXPECT_EQ(before.back(), '.') << before.substr(before.size() - 40);
      EXPECT_NEAR(static_cast<double>(at) / static_cast<double>(s.input.size()), 0.5, 0.1);
    }
    EXPECT_EQ(s.answer_prefix, "\n\nAssistant: Here is the most relevant sentence in the context:");
    EXPECT_DOUBLE_EQ(niah_score(s, "eat a sandwich and sit in Dolores Park on a sunny day"), 1.0);
  }
  EXPECT_EQ(inputs.size(), samples.size()) << "each sample of a cell has its own haystack window";
  // the prompt: system message, user text, and the answer prefix continuing in one string
  const auto p = niah_prompt(llama2(), chat, samples[2]);
  const std::string context = llama2().decode(std::vector<int64_t>(p.first.begin() + p.second.context_begin, p.first.begin() + p.second.context_end));
  EXPECT_NE(context.find("The best thing to do in San Francisco"), std::string::npos);
  EXPECT_EQ(context.find("</context>"), std::string::npos);
  const std::string head = llama2().decode(std::vector<int64_t>(p.first.begin(), p.first.begin() + p.second.context_begin));
  EXPECT_NE(head.find("You are a helpful AI bot"), std::string::npos);
  EXPECT_EQ(static_cast<int64_t>(p.first.size()), samples[2].prompt_tokens);
}

TEST(Niah, RulerSetupUsesTheMagicNumberNeedleAndStringMatch) {
  ChatOptions chat;
  NiahConfig c = config("ruler");
  c.lengths = {2048};
  const auto samples = generate_niah(c, llama2(), chat, 42);
  ASSERT_EQ(samples.size(), 3u * 2u);
  std::set<std::string> values;
  for (const auto& s : samples) {
    ASSERT_EQ(s.outputs.size(), 1u);
    values.insert(s.outputs[0]);
    EXPECT_TRUE(std::regex_match(s.outputs[0], std::regex("[1-9][0-9]{6}")));
    std::smatch m;
    ASSERT_TRUE(std::regex_search(s.input, m, std::regex("One of the special magic numbers for ([a-z -]+) is: " + s.outputs[0] + "\\.")))
        << s.input.substr(s.input.find("magic numbers for") == std::string::npos ? 0 : s.input.find("magic numbers for"), 120);
    EXPECT_EQ(s.input.rfind("A special magic number is hidden within the following text.", 0), 0u);
    EXPECT_TRUE(ends_with(s.input, "\nWhat is the special magic number for " + std::string(m[1]) + " mentioned in the provided text?"));
    EXPECT_EQ(s.answer_prefix, " The special magic number for " + std::string(m[1]) + " mentioned in the provided text is");
    EXPECT_EQ(s.tokens_to_generate, 128);
    const int64_t length = static_cast<int64_t>(encode_with_control_text(llama2(), s.input + s.answer_prefix).size()) + 128;
    EXPECT_LE(length, 2048);
    EXPECT_GE(length, 2048 - 800);  // within one 500-word step, as RULER's essay sizing
    EXPECT_DOUBLE_EQ(niah_score(s, "The number is " + s.outputs[0] + "."), 1.0);
    EXPECT_DOUBLE_EQ(niah_score(s, "I do not know."), 0.0);
  }
  EXPECT_EQ(values.size(), samples.size()) << "new values per sample";
}

TEST(Niah, KvpressSetupWrapsTheBookAndScoresByRouge) {
  ChatOptions chat;
  NiahConfig c = config("kvpress");
  c.lengths = {1024};
  const auto samples = generate_niah(c, llama2(), chat, 42);
  ASSERT_EQ(samples.size(), 3u * 2u);
  for (const auto& s : samples) {
    EXPECT_EQ(s.input.rfind("This is a very long story book: <book> ", 0), 0u);
    EXPECT_NE(s.input.find(" </book>.\nWhat is the best thing to do in San Francisco?"), std::string::npos);
    EXPECT_NE(s.input.find("The best thing to do in San Francisco is eat a sandwich"), std::string::npos);
    EXPECT_NEAR(niah_score(s, s.needle), 1.0, 1e-8);  // pltrdy's F-score carries a 1e-8 epsilon
    EXPECT_LT(niah_score(s, "I like going to the beach"), 0.2);
    // haystack + needle: L - 150 tokens
    EXPECT_LE(s.prompt_tokens, 1024 - 150 + 60);
  }
}

TEST(Niah, CustomGridPlacesTheNeedleAtEachDepthWithinEachLength) {
  NiahConfig c = config("custom");
  c.lengths = {512, 1024};
  c.needle = "The secret code of amber falcon is 48213.";
  c.question = "Question: What is the secret code of amber falcon?";
  c.answer_prefix = "\nAnswer: The secret code of amber falcon is";
  c.answer_keywords = {"48213"};
  ChatOptions chat;
  const auto s = generate_niah(c, llama2(), chat, 42);
  ASSERT_EQ(s.size(), 2u * 3u * 2u);
  for (const auto& x : s) {
    EXPECT_LE(x.prompt_tokens + x.tokens_to_generate, x.length);
    EXPECT_GT(x.prompt_tokens + x.tokens_to_generate, x.length - 40);
    EXPECT_TRUE(ends_with(x.input, "\n\n" + c.question));
    EXPECT_EQ(x.answer_prefix, c.answer_prefix);
    if (x.depth == 100) {  // just before the question
      EXPECT_TRUE(ends_with(x.input, c.needle + "\n\n" + c.question));
    }
    const size_t at = x.input.find(c.needle);
    ASSERT_NE(at, std::string::npos);
    const double rel = static_cast<double>(at) / static_cast<double>(x.input.size());
    EXPECT_NEAR(rel * 100, x.depth, 12.0) << x.length << " @ " << x.depth;
    EXPECT_DOUBLE_EQ(niah_score(x, "48213"), 1.0);
    EXPECT_DOUBLE_EQ(niah_score(x, "4821313"), 0.0);  // word recall: another number
  }
  // a number needle scored as RULER scores it (substring), by choice
  NiahConfig sm = c;
  sm.metric = "string_match_all";
  sm.depths = {50};
  const auto y = generate_niah(sm, llama2(), chat, 42);
  EXPECT_DOUBLE_EQ(niah_score(y[0], "4821313"), 1.0);
  EXPECT_EQ(y[0].metric, "string_match_all");
  NiahConfig bad = c;
  bad.metric = "bleu";
  EXPECT_THROW(bad.resolve(), Error);
  EXPECT_EQ(s[0].input.rfind(c.needle, 0), 0u);  // depth 0: the very first sentence
  EXPECT_NE(s[0].input, s[1].input);             // the cell's second sample: another haystack window
  c.depths = {120};
  EXPECT_THROW(generate_niah(c, llama2(), chat, 42), Error);
}
