// LongBench and RULER metrics against hand-computed cases (and, for difflib's ratio, values
// computed with CPython's difflib on the same strings), covering the quirks benchmarks.md lists.
#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/longbench_metrics.h"
#include "eval/py_text.h"
#include "eval/ruler_metrics.h"
#include "eval/sequence_matcher.h"

namespace lb = echokv::longbench;
namespace ruler = echokv::ruler;
namespace py = echokv::py;

TEST(PyText, LowerSplitStripFindallFollowPython) {
  EXPECT_EQ(py::lower("ÄÖÜ İ Abc"), "äöü i\xcc\x87 abc");
  EXPECT_EQ(py::split("  a\tb\u00a0c\u3000d \n"), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(py::split_on("a..b.", "."), (std::vector<std::string>{"a", "", "b", ""}));
  EXPECT_EQ(py::strip("\u2003 x y \n"), "x y");
  EXPECT_EQ(py::findall(R"(\d+)", "a12b3 ٣4"), (std::vector<std::string>{"12", "3", "٣4"}));  // \d is Unicode
  EXPECT_EQ(py::findall(R"(Paragraph (\d+))", "Paragraph 7, Paragraph 12"), (std::vector<std::string>{"7", "12"}));
  EXPECT_DOUBLE_EQ(py::round_to(83.335, 2), 83.33);  // 83.335 is 83.33499... in binary
  EXPECT_DOUBLE_EQ(py::round_to(0.125, 2), 0.12);    // exact tie: half to even
  EXPECT_DOUBLE_EQ(py::round_to(0.375, 2), 0.38);
}

TEST(LongBenchMetrics, NormalizeAnswerRemovesPunctuationArticlesAndSpaces) {
  EXPECT_EQ(lb::normalize_answer("The Cat's  hat, an apple!"), "cats hat apple");
  EXPECT_EQ(lb::normalize_answer("A theater; THE end."), "theater end");
  EXPECT_EQ(lb::normalize_answer("an_apple a-b"), "anapple ab");  // '_' and '-' are punctuation
  EXPECT_EQ(lb::normalize_answer(""), "");
}

TEST(LongBenchMetrics, QaF1IsMultisetTokenF1) {
  EXPECT_NEAR(lb::qa_f1_score("the big red dog", "a red dog barked"), 2.0 / 3.0, 1e-15);
  EXPECT_DOUBLE_EQ(lb::qa_f1_score("dog dog cat", "dog"), 0.5);
  EXPECT_DOUBLE_EQ(lb::qa_f1_score("", "dog"), 0.0);
  EXPECT_DOUBLE_EQ(lb::qa_f1_score("The", "the"), 0.0);  // both normalise to nothing
  EXPECT_DOUBLE_EQ(lb::qa_f1_score("Paris.", "paris"), 1.0);
}

TEST(LongBenchMetrics, ClassificationSkipsTheElementAfterEachRemoval) {
  const std::vector<std::string> classes = {"Location", "Loc", "Lo", "Human"};
  // Matches [Location, Loc, Lo]; removing "Loc" shifts "Lo" into its slot, which Python's
  // iterator then skips, so "Lo" stays: 1/2 (a correct filter would give 1).
  EXPECT_DOUBLE_EQ(lb::classification_score("Location Loc Lo", "Location", classes), 0.5);
  EXPECT_DOUBLE_EQ(lb::classification_score("Location", "Location", classes), 0.5);  // same matches, same skip
  // Location, Loc, Lo, Human: "Loc" removed, "Lo" skipped -> 3 left.
  EXPECT_DOUBLE_EQ(lb::classification_score("Location Human", "Location", classes), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(lb::classification_score("Location Lo", "Location", {"Location", "Lo", "Human"}), 1.0);
  EXPECT_DOUBLE_EQ(lb::classification_score("Human being", "Location", classes), 0.0);
  EXPECT_DOUBLE_EQ(lb::classification_score("", "Location", classes), 0.0);
}

TEST(LongBenchMetrics, RetrievalAndCountUseAllNumbersInThePrediction) {
  EXPECT_NEAR(lb::retrieval_score("Paragraph 12 and paragraph 3, also 12", "Paragraph 12"), 2.0 / 3.0, 1e-15);
  EXPECT_DOUBLE_EQ(lb::retrieval_score("no idea", "Paragraph 12"), 0.0);
  EXPECT_DOUBLE_EQ(lb::retrieval_score("Paragraph 120", "Paragraph 12"), 0.0);
  EXPECT_DOUBLE_EQ(lb::retrieval_zh_score("段落5", "段落5"), 1.0);
  EXPECT_DOUBLE_EQ(lb::count_score("There are 7 unique paragraphs out of 10", "7"), 0.5);
  EXPECT_DOUBLE_EQ(lb::count_score("seven", "7"), 0.0);
  EXPECT_THROW(lb::retrieval_score("1", "no paragraph id"), echokv::Error);
}

TEST(LongBenchMetrics, CodeSimTakesFirstLineWithoutCommentsOrFences) {
  EXPECT_DOUBLE_EQ(lb::code_sim_score("\n\n# comment\n```python\nx = foo(1)\ny=2", "x = foo(2)"), 0.9);
  EXPECT_DOUBLE_EQ(lb::code_sim_score("// a\n# b", "x = 1"), 0.0);  // no line qualifies: ""
  EXPECT_DOUBLE_EQ(lb::code_sim_score("x", "x"), 1.0);
  EXPECT_DOUBLE_EQ(lb::code_sim_score("\n", ""), 1.0);  // fuzz.ratio("", "") is 100 (equal)
}

TEST(SequenceMatcher, MatchesDifflibIncludingAutojunkAndRounding) {
  EXPECT_EQ(echokv::fuzz_ratio("abcdefgh", "abcdeXYZ"), 62);  // 62.5 -> 62 (half to even)
  EXPECT_EQ(echokv::fuzz_ratio("abcdefgh", "abcdefgX"), 88);  // 87.5 -> 88
  EXPECT_EQ(echokv::fuzz_ratio("xxxx", std::string(200, 'x') + "ab"), 4);
  auto make = [](const std::string& alphabet, int n, int m, bool cubic) {
    std::u32string s;
    for (long i = 0; i < n; ++i) s.push_back(static_cast<char32_t>(alphabet[((cubic ? i * i * i : i * i) + m * i) % 8]));
    return s;
  };
  // Values from CPython's difflib (autojunk on; without it they would be 0.5709 / 0.4053).
  EXPECT_DOUBLE_EQ(echokv::sequence_matcher_ratio(make("ab c(d)=", 250, 7, false), make("ab c(e)=", 300, 5, true)),
                   0.0036363636363636364);
  EXPECT_DOUBLE_EQ(echokv::sequence_matcher_ratio(make("ab c(d)=", 120, 3, false), make("ab c(e)=", 260, 11, true)),
                   0.010526315789473684);
  EXPECT_DOUBLE_EQ(echokv::sequence_matcher_ratio(make("ab c(d)=", 40, 5, false), make("ab c(e)=", 60, 3, true)), 0.5);
}

TEST(LongBenchMetrics, RougeLIsPltrdySummaryLevelOnWordTypes) {
  EXPECT_NEAR(lb::rouge_score("the cat sat on the mat", "the cat lay on the mat"), 0.7999999950000001, 1e-15);
  EXPECT_NEAR(lb::rouge_score("a b. c d", "a c. b d"), 0.999999995, 1e-15);
  // LCS("a b", "b a") walks back preferring j-1 on ties and keeps "b": union {b}.
  EXPECT_NEAR(lb::rouge_score("b a. b", "a b"), 0.4999999950000001, 1e-15);
  // A whitespace-only sentence contributes the empty word "" to the hypothesis types.
  EXPECT_NEAR(lb::rouge_score("cat. ", "cat"), 0.6666666622222223, 1e-15);
  EXPECT_DOUBLE_EQ(lb::rouge_score("", "cat"), 0.0);   // the reference raises: scored 0
  EXPECT_DOUBLE_EQ(lb::rouge_score("...", "cat"), 0.0);
  EXPECT_DOUBLE_EQ(lb::rouge_score("Cat", "cat"), 0.0);  // no lowercasing
}

TEST(LongBenchMetrics, DatasetScoresCutFirstLineTakeMaxAndRound) {
  std::vector<lb::Prediction> preds(3);
  preds[0] = {"\nParis\nLondon", {"London", "Paris"}, {}, 1000};
  preds[1] = {"Rome", {"Paris"}, {}, 5000};
  preds[2] = {"Paris is nice", {"Paris"}, {}, 9000};
  // triviaqa: first line "Paris" -> 1; "Rome" -> 0; "Paris is nice" vs "Paris" -> F1 2/4 = 0.5.
  EXPECT_DOUBLE_EQ(lb::score_dataset("triviaqa", preds), 50.0);
  // hotpotqa has no cut: "paris london" vs "london" -> 2/3 (max over answers).
  EXPECT_DOUBLE_EQ(lb::score_dataset("hotpotqa", preds), py::round_to(100 * (2.0 / 3.0 + 0.5) / 3, 2));
  const auto buckets = lb::score_dataset_by_length("triviaqa", preds);
  EXPECT_DOUBLE_EQ(buckets.at("0-4k"), 100.0);
  EXPECT_DOUBLE_EQ(buckets.at("4-8k"), 0.0);
  EXPECT_DOUBLE_EQ(buckets.at("8k+"), 50.0);
  EXPECT_EQ(lb::metric_for("repobench-p"), "code_sim");
  EXPECT_THROW(lb::metric_for("nosuch"), echokv::Error);
  const std::string e = [&] {
    try {
      lb::score_dataset("dureader", preds);
    } catch (const echokv::Error& err) {
      return std::string(err.what());
    }
    return std::string();
  }();
  EXPECT_NE(e.find("not supported"), std::string::npos) << e;
}

TEST(RulerMetrics, CleanUpAndStringMatch) {
  EXPECT_EQ(ruler::postprocess_pred("  1234567 and\x07 7654321.\t "), "1234567 and\n 7654321.");
  const std::vector<std::string> refs = {"1234567", "7654321", "999"};
  EXPECT_NEAR(ruler::string_match_all_sample("1234567 and 7654321", refs), 2.0 / 3.0, 1e-15);
  EXPECT_DOUBLE_EQ(ruler::string_match_part_sample("1234567", refs), 1.0);
  EXPECT_DOUBLE_EQ(ruler::string_match_all_sample("", refs), 0.0);
  EXPECT_DOUBLE_EQ(ruler::string_match_all_sample("ABC-Def", {"abc-DEF"}), 1.0);  // case-insensitive
  EXPECT_DOUBLE_EQ(ruler::score_task("niah_single_1", {"1234567 and 7654321", "999 1234567 7654321"}, {refs, refs}),
                   83.33);
  EXPECT_DOUBLE_EQ(ruler::score_task("qa_1", {"x 999", "nothing"}, {refs, refs}), 50.0);
  EXPECT_EQ(ruler::metric_for_task("qa_2"), "string_match_part");
  EXPECT_EQ(ruler::metric_for_task("vt"), "string_match_all");
}
