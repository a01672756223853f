// RULER-format training samples: exact length, RULER's prompt (what the evaluation feeds) as
// the sample's head, the answer in the task examples' form and weighted, training seeds
// disjoint from evaluation seeds, and essay haystacks that never reach the words RULER's own
// evaluation haystack is made of.
#include <set>

#include <gtest/gtest.h>

#include "eval/py_text.h"
#include "eval/ruler_template.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"
#include "train/ruler_training.h"

using namespace echokv;
using echokv::testing::require_fixture;
using echokv::testing::source_dir;

namespace {

struct Fixture {
  std::unique_ptr<Tokenizer> tok = load_tokenizer(source_dir() + "/data/models/echokv-testbed-8l/tokenizer.model");
  TokenCorpus corpus;
  std::vector<std::string> words;
  std::unique_ptr<TaskGenerator> filler;
  Fixture() {
    std::string text;
    for (int i = 0; i < 200; ++i) text += "The quick brown fox jumps over the lazy dog number " + std::to_string(i) + ". ";
    for (auto id : tok->encode(text, false)) corpus.tokens.push_back(static_cast<int32_t>(id));
    for (int i = 0; i < 60; ++i) words.push_back("word" + std::string(1, static_cast<char>('a' + i % 26)) + std::to_string(i));
    filler = std::make_unique<TaskGenerator>(*tok, corpus, words, TaskOptions{});
  }
  RulerTrainingOptions options(std::vector<std::string> tasks = {}) {
    RulerTrainingOptions o;
    o.data_dir = require_fixture("data/ruler");
    o.tasks = std::move(tasks);
    return o;
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

}  // namespace

TEST(RulerTraining, DefaultTasksAreTheElevenSyntheticOnes) {
  auto& f = fixture();
  RulerTrainingSampler s(*f.tok, *f.filler, f.options());
  const std::set<std::string> got(s.tasks().begin(), s.tasks().end());
  const std::set<std::string> expected = {"niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1",
                                          "niah_multikey_2", "niah_multikey_3", "niah_multivalue", "niah_multiquery",
                                          "vt", "cwe", "fwe"};
  EXPECT_EQ(got, expected);
}

TEST(RulerTraining, SampleIsThePromptThenTheWeightedAnswerThenFiller) {
  auto& f = fixture();
  auto o = f.options({"niah_multivalue", "vt", "cwe", "fwe", "niah_single_3"});
  o.prompt_weight = 0.25f;
  o.answer_weight = 4.0f;
  RulerTrainingSampler s(*f.tok, *f.filler, o);
  const int64_t L = 1025;
  for (const auto& task : s.tasks()) {
    std::mt19937_64 rng(7);
    const TaskSample t = s.make(task, rng, L);
    ASSERT_EQ(static_cast<int64_t>(t.tokens.size()), L) << task;
    ASSERT_EQ(t.weights.size(), t.tokens.size()) << task;
    EXPECT_EQ(t.tokens[0], *f.tok->bos_id());
    ASSERT_FALSE(t.answer_positions.empty()) << task;
    // The answer decodes to every expected output, in the task's example form.
    std::vector<int64_t> answer;
    for (int64_t p : t.answer_positions) {
      answer.push_back(t.tokens[static_cast<size_t>(p)]);
      EXPECT_FLOAT_EQ(t.weights[static_cast<size_t>(p)], 4.0f);
    }
    const std::string text = f.tok->decode(answer);
    const int64_t after = t.answer_positions.back() + 1;
    EXPECT_EQ(t.tokens[static_cast<size_t>(after)], *f.tok->eos_id()) << task;  // the answer ends with EOS ...
    EXPECT_FLOAT_EQ(t.weights[static_cast<size_t>(after)], 4.0f);              // ... which is learned too
    // Prompt tokens carry the prompt weight (BOS predicts nothing).
    EXPECT_FLOAT_EQ(t.weights[0], 0.0f);
    EXPECT_FLOAT_EQ(t.weights[static_cast<size_t>(t.answer_positions.front() - 1)], 0.25f);
    // The prompt part is exactly RULER's prompt ids (what echokv-eval feeds the model).
    std::mt19937_64 again(7);
    const TaskSample u = s.make(task, again, L);
    EXPECT_EQ(u.tokens, t.tokens) << "a sample is a pure function of the generator state";
    if (after + 1 < L) {
      EXPECT_EQ(t.tokens[static_cast<size_t>(after + 1)], *f.tok->bos_id()) << "filler starts with BOS";
    }
    EXPECT_FALSE(text.empty()) << task;
  }
}

TEST(RulerTraining, AnswerTextFollowsTheTaskExamples) {
  auto& f = fixture();
  RulerTrainingSampler s(*f.tok, *f.filler, f.options());
  const auto& d = s.data();
  EXPECT_EQ(ruler_answer_text(d.task("cwe"), {"apple", "pear"}), " 1. apple 2. pear");
  EXPECT_EQ(ruler_answer_text(d.task("vt"), {"ABCDE", "FGHIJ"}), " ABCDE FGHIJ");
  EXPECT_EQ(ruler_answer_text(d.task("fwe"), {"abc", "def", "ghi"}), " abc def ghi");
  EXPECT_EQ(ruler_answer_text(d.task("niah_multivalue"), {"1", "2"}), " 1, 2.");
  EXPECT_EQ(ruler_answer_text(d.task("niah_single_1"), {"1234567"}), " 1234567.");
}

TEST(RulerTraining, EncodedSampleStartsWithTheEvaluationPrompt) {
  auto& f = fixture();
  RulerTrainingSampler s(*f.tok, *f.filler, f.options());
  for (const char* task : {"niah_single_1", "vt", "cwe"}) {
    const RulerSample r = s.generate(task, 1024, 42, 0, 0);
    const auto prompt = ruler_prompt_ids(*f.tok, r.input + r.answer_prefix);
    const auto [ids, answer_begin] = s.encode(r);
    ASSERT_LE(answer_begin, static_cast<int64_t>(prompt.size()));
    EXPECT_GE(answer_begin, static_cast<int64_t>(prompt.size()) - 1) << "at most the boundary token differs";
    EXPECT_TRUE(std::equal(ids.begin(), ids.begin() + answer_begin, prompt.begin())) << task;
    const std::string answer = f.tok->decode(std::vector<int64_t>(ids.begin() + answer_begin, ids.end() - 1));
    for (const auto& o : r.outputs) EXPECT_NE(answer.find(o), std::string::npos) << task << ": " << answer;
  }
}

TEST(RulerTraining, TrainingSeedsNeverMeetEvaluationSeeds) {
  for (uint64_t draw : {uint64_t{0}, uint64_t{42}, uint64_t{1} << 62, ~uint64_t{0}})
    EXPECT_NE(ruler_training_seed(draw) >> 63, 0u) << draw;
  // evaluation configs use small seeds: their top bit is clear
  EXPECT_EQ(uint64_t{42} >> 63, 0u);
}

// RULER's evaluation haystack is the essays' first words; a training haystack reads only the
// words from essay_train_begin on, wrapping inside that part.
TEST(RulerTraining, EssayHaystackStaysInTheTrainingPart) {
  auto& f = fixture();
  auto o = f.options({"niah_single_2"});
  o.essay_train_begin = 0.5;
  RulerTrainingSampler s(*f.tok, *f.filler, o);
  const int64_t begin = s.essay_train_begin_words(), words = s.data().essay_word_count();
  ASSERT_GT(begin, 1000);
  ASSERT_NEAR(static_cast<double>(begin) / static_cast<double>(words), 0.5, 1e-4);
  const RulerSample eval = s.generate("niah_single_2", 2048, 42, 0, 0);
  // text from the middle of the evaluation haystack
  const std::string eval_probe = eval.input.substr(eval.input.size() / 2, 80);
  ASSERT_EQ(eval_probe.find("magic"), std::string::npos) << "the probe should be essay text: " << eval_probe;
  // near the end of the essays: the haystack wraps to `begin`, not to word 0
  const RulerSample wrapped = s.generate("niah_single_2", 2048, ruler_training_seed(1), begin, words - 50);
  EXPECT_EQ(wrapped.input.find(eval_probe), std::string::npos);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 4; ++i) {
    const TaskSample t = s.make("niah_single_2", rng, 2049);
    EXPECT_EQ(f.tok->decode(t.tokens).find(eval_probe), std::string::npos);
  }
  // the offset must lie in the range
  EXPECT_THROW(s.generate("niah_single_2", 1024, 1, begin, begin - 1), Error);
  EXPECT_THROW(s.generate("niah_single_2", 1024, 1, 0, words), Error);
}

TEST(RulerTraining, BadOptionsFailClearly) {
  auto& f = fixture();
  auto o = f.options({"qa_1"});
  EXPECT_NE(echokv::testing::error_of([&] { RulerTrainingSampler s(*f.tok, *f.filler, o); }).find("qa_1"), std::string::npos);
  o = f.options({"no_such_task"});
  EXPECT_NE(echokv::testing::error_of([&] { RulerTrainingSampler s(*f.tok, *f.filler, o); }).find("no_such_task"),
            std::string::npos);
  o = f.options();
  o.essay_train_begin = 1.0;
  EXPECT_NE(echokv::testing::error_of([&] { RulerTrainingSampler s(*f.tok, *f.filler, o); }).find("essay_train_begin"),
            std::string::npos);
}
