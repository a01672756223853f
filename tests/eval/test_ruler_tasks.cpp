// RULER generation from the official configs in ../shared/data/ruler: every task renders its
// template exactly (checked against templates.json and benchmarks.md's rules, not against
// our own output), lands within the target length but close to it, and carries its answers.
#include <fstream>
#include <regex>

#include <gtest/gtest.h>

#include "eval/py_text.h"
#include "eval/ruler_tasks.h"
#include "eval/ruler_template.h"
#include "test_support.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

using namespace echokv;
using echokv::testing::require_fixture;

namespace {

struct Fixture {
  std::unique_ptr<Tokenizer> tok = load_tokenizer(require_fixture("fixtures/tokenizers/llama2/tokenizer.model"));
  RulerData data{require_fixture("data/ruler")};
  PromptTokenCounter counter() const {
    return [this](const std::string& input, const std::string& prefix) {
      ChatOptions opts;
      opts.format = ChatFormat::kPlain;
      return static_cast<int64_t>(render_chat(*tok, {{"user", input}}, opts, prefix).size());
    };
  }
  RulerTokenCounter ruler_counter() const {
    return [this](const std::string& text) { return static_cast<int64_t>(encode_with_control_text(*tok, text).size()); };
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

}  // namespace

TEST(RulerTasks, AllThirteenTasksFromTheOfficialConfig) {
  const auto& names = fixture().data.task_names();
  EXPECT_EQ(names.size(), 13u);
  EXPECT_EQ(fixture().data.task("niah_multikey_3").arg("type_needle_k"), "uuids");
  EXPECT_NE(fixture().data.unavailable_reason("qa_1").find("squad"), std::string::npos);
  EXPECT_EQ(fixture().data.unavailable_reason("vt"), "");
  EXPECT_THROW(fixture().data.task("niah_single_9"), Error);
}

TEST(RulerTasks, SingularNiahTemplateRendersExactly) {
  auto s = fixture().data.generate("niah_single_1", 1024, 2, 42, fixture().ruler_counter());
  ASSERT_EQ(s.size(), 2u);
  for (const auto& x : s) {
    ASSERT_EQ(x.outputs.size(), 1u);
    EXPECT_TRUE(std::regex_match(x.outputs[0], std::regex("[1-9][0-9]{6}")));
    const std::string head =
        "A special magic number is hidden within the following text. Make sure to memorize it. I will quiz you "
        "about the number afterwards.\n";
    EXPECT_TRUE(starts_with(x.input, head)) << x.input.substr(0, 200);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(x.input, m, std::regex("One of the special magic numbers for ([a-z]+-[a-z]+) is: ([0-9]+)\\.")));
    const std::string key = m[1];
    EXPECT_EQ(m[2], x.outputs[0]);
    EXPECT_TRUE(ends_with(x.input, "\nWhat is the special magic number for " + key + " mentioned in the provided text?"));
    EXPECT_EQ(x.answer_prefix, " The special magic number for " + key + " mentioned in the provided text is");
    // noise haystack: the repeated sentence, lines joined by "\n"
    EXPECT_NE(x.input.find("The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n"),
              std::string::npos);
    EXPECT_LE(x.length, 1024);
    EXPECT_GT(x.length, 1024 - 5 * 40);  // one sizing step (5 noise sentences, ~40 tokens each) below
    EXPECT_EQ(x.tokens_to_generate, 128);
  }
  EXPECT_NE(s[0].input, s[1].input);
  // Deterministic for a seed, different for another.
  auto again = fixture().data.generate("niah_single_1", 1024, 2, 42, fixture().ruler_counter());
  EXPECT_EQ(again[1].input, s[1].input);
  auto other = fixture().data.generate("niah_single_1", 1024, 2, 7, fixture().ruler_counter());
  EXPECT_NE(other[0].input, s[0].input);
}

TEST(RulerTasks, PluralNiahVariantsKeepTheTemplateAndAskForAllValues) {
  auto mv = fixture().data.generate("niah_multivalue", 2048, 1, 42, fixture().ruler_counter())[0];
  EXPECT_EQ(mv.outputs.size(), 4u);
  EXPECT_TRUE(starts_with(mv.input, "Some special magic numbers are hidden within the following text."));
  EXPECT_TRUE(std::regex_search(mv.input, std::regex("\nWhat are all the special magic numbers for [a-z]+-[a-z]+ mentioned in the provided text\\?$")));
  for (const auto& v : mv.outputs) EXPECT_NE(mv.input.find(v), std::string::npos);
  auto mq = fixture().data.generate("niah_multiquery", 2048, 1, 42, fixture().ruler_counter())[0];
  EXPECT_EQ(mq.outputs.size(), 4u);
  // four keys joined "a, b, c, and d"
  EXPECT_TRUE(std::regex_search(mq.answer_prefix, std::regex("^ The special magic numbers for [a-z-]+, [a-z-]+, [a-z-]+, and [a-z-]+ mentioned in the provided text are$")))
      << mq.answer_prefix;
  auto uu = fixture().data.generate("niah_multikey_3", 2048, 1, 42, fixture().ruler_counter())[0];
  const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  EXPECT_TRUE(std::regex_match(uu.outputs[0], uuid)) << uu.outputs[0];
  EXPECT_TRUE(starts_with(uu.input, "A special magic uuid is hidden"));
  // needle haystack: every line is a needle sentence
  const auto body = uu.input.substr(uu.input.find('\n') + 1);
  EXPECT_GT(std::count(body.begin(), body.end(), '\n'), 10);
  auto essay = fixture().data.generate("niah_single_2", 2048, 1, 42, fixture().ruler_counter())[0];
  EXPECT_NE(essay.input.find(" One of the special magic numbers for "), std::string::npos);
  EXPECT_LE(essay.length, 2048);
}

TEST(RulerTasks, VariableTrackingCommonAndFrequentWords) {
  auto vt = fixture().data.generate("vt", 2048, 1, 42, fixture().ruler_counter())[0];
  ASSERT_EQ(vt.outputs.size(), 5u);
  for (const auto& v : vt.outputs) EXPECT_TRUE(std::regex_match(v, std::regex("[A-Z]{5}")));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(vt.input, m, std::regex("VAR " + vt.outputs[0] + " = ([0-9]{5})")));
  EXPECT_TRUE(ends_with(vt.input, "Question: Find all variables that are assigned the value " + std::string(m[1]) +
                                      " in the text above."));
  EXPECT_EQ(vt.answer_prefix, " Answer: According to the chain(s) of variable assignment in the text above, 5 variables "
                              "are assigned the value " + std::string(m[1]) + ", they are: ");
  for (int j = 1; j < 5; ++j)
    EXPECT_NE(vt.input.find("VAR " + vt.outputs[j] + " = VAR " + vt.outputs[j - 1]), std::string::npos);
  // the in-context example comes first and is answered (3-letter names)
  EXPECT_TRUE(starts_with(vt.input, "Memorize and track the chain(s) of variable assignment hidden in the following text."));
  size_t questions = 0;
  for (size_t at = 0; (at = vt.input.find("Question: Find all variables", at)) != std::string::npos; ++at) ++questions;
  EXPECT_EQ(questions, 2u);

  auto cwe = fixture().data.generate("cwe", 2048, 1, 42, fixture().ruler_counter())[0];
  ASSERT_EQ(cwe.outputs.size(), 10u);
  EXPECT_TRUE(ends_with(cwe.input, "Question: What are the 10 most common words in the above list?"));
  EXPECT_EQ(cwe.answer_prefix, " Answer: The top 10 words that appear most often in the list are:");
  // below 4K: common words 6x in the question's list (plus up to 3x in the example)
  const std::string question_part = cwe.input.substr(cwe.input.rfind("Below is a numbered list"));
  for (const auto& w : cwe.outputs) {
    size_t n = 0, at = 0;
    while ((at = question_part.find(". " + w + " ", at)) != std::string::npos) ++n, ++at;
    EXPECT_GE(n, 5u) << w;  // the last occurrence may end the list without a trailing space
  }

  auto fwe = fixture().data.generate("fwe", 2048, 1, 42, fixture().ruler_counter())[0];
  ASSERT_EQ(fwe.outputs.size(), 3u);
  const auto words = py::split(fwe.input.substr(fwe.input.find("coded words. ") + 13));
  auto freq = [&](const std::string& w) { return std::count(words.begin(), words.end(), w); };
  EXPECT_GT(freq(fwe.outputs[0]), freq(fwe.outputs[1]));
  EXPECT_GT(freq(fwe.outputs[1]), freq(fwe.outputs[2]));
  EXPECT_GT(freq("..."), freq(fwe.outputs[0]));
  EXPECT_LE(fwe.length, 2048);
}

TEST(RulerTasks, SampleRoundTripsThroughJson) {
  auto s = fixture().data.generate("niah_multikey_1", 1024, 1, 3, fixture().ruler_counter())[0];
  auto back = RulerSample::from_json(s.to_json(), "test");
  EXPECT_EQ(back.input, s.input);
  EXPECT_EQ(back.outputs, s.outputs);
  EXPECT_EQ(back.length, s.length);
}

TEST(RulerTasks, QaReadsSquadAndHotpotFilesTheUserGives) {
  echokv::testing::TempDir tmp;
  {
    std::ofstream squad(tmp.file("squad.json"));
    squad << R"({"data": [)";
    for (int a = 0; a < 3; ++a) {
      if (a) squad << ",";
      squad << R"({"title": "t)" << a << R"(", "paragraphs": [)";
      for (int p = 0; p < 4; ++p) {
        if (p) squad << ",";
        squad << R"({"context": "Article )" << a << " paragraph " << p << R"( says the colour is shade)" << a << p
              << R"(.", "qas": [{"question": "What colour does article )" << a << " paragraph " << p
              << R"( give?", "answers": [{"text": "shade)" << a << p << R"(", "answer_start": 0}], "is_impossible": false},
                 {"question": "Unanswerable?", "answers": [], "is_impossible": true}]})";
      }
      squad << "]}";
    }
    squad << "]}";
    std::ofstream hotpot(tmp.file("hotpot.json"));
    hotpot << "[";
    for (int q = 0; q < 5; ++q) {
      if (q) hotpot << ",";
      hotpot << R"({"question": "Who founded firm )" << q << R"(?", "answer": "Person)" << q
             << R"(", "context": [["Firm )" << q << R"(", ["Firm )" << q << " was founded by Person" << q << R"(.", " It is old."]],
                 ["Other )" << q << R"(", ["Nothing here."]]]})";
    }
    hotpot << "]";
  }
  RulerData data(require_fixture("data/ruler"), tmp.file("squad.json"), tmp.file("hotpot.json"));
  EXPECT_EQ(data.unavailable_reason("qa_1"), "");
  auto s = data.generate("qa_1", 1024, 3, 42, fixture().ruler_counter());
  ASSERT_EQ(s.size(), 3u);
  for (const auto& x : s) {
    EXPECT_TRUE(starts_with(x.input, "Answer the question based on the given documents. Only give me the answer and do not "
                                     "output any other words.\n\nThe following are given documents.\n\nDocument 1:\n"));
    EXPECT_NE(x.input.find(x.outputs[0] + "."), std::string::npos);  // the question's own paragraph is included
    EXPECT_TRUE(std::regex_search(x.input, std::regex("\n\nQuestion: What colour does article [0-9] paragraph [0-9] give\\?$")));
    EXPECT_EQ(x.answer_prefix, " Answer:");
    EXPECT_EQ(x.tokens_to_generate, 32);
  }
  // All 12 paragraphs fit in 1024 tokens, so every document is there, numbered 1..12.
  EXPECT_NE(s[0].input.find("Document 12:\n"), std::string::npos);
  auto h = data.generate("qa_2", 1024, 2, 42, fixture().ruler_counter());
  EXPECT_EQ(h[1].outputs, std::vector<std::string>{"Person1"});
  EXPECT_NE(h[1].input.find("Firm 1\nFirm 1 was founded by Person1. It is old."), std::string::npos);
  RulerData missing(require_fixture("data/ruler"), tmp.file("nope.json"));
  EXPECT_NE(missing.unavailable_reason("qa_1").find("does not exist"), std::string::npos);
}
