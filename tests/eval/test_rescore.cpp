// `echokv-eval score`: re-scoring LongBench and RULER prediction files, and clear errors on
// malformed input.
#include <fstream>

#include <gtest/gtest.h>

#include "eval/rescore.h"
#include "io/jsonl.h"
#include "test_support.h"

using namespace echokv::testing;

namespace {

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST(Rescore, LongBenchFileScoresPerDatasetWithLengthBuckets) {
  TempDir dir;
  const auto path = dir.file("preds.jsonl");
  write(path,
        R"({"dataset": "trec", "pred": "Location\nHuman", "answers": ["Location"], "all_classes": ["Human", "Location"], "length": 100})" "\n"
        R"({"dataset": "trec", "pred": "Human", "answers": ["Location"], "all_classes": ["Human", "Location"], "length": 5000})" "\n"
        R"({"dataset": "passage_count", "pred": "3 or 4", "answers": ["3"], "all_classes": null, "length": 9000})" "\n");
  const auto r = echokv::rescore_longbench(path, true);
  EXPECT_DOUBLE_EQ(r["scores"]["trec"].get<double>(), 50.0);  // first line "Location" -> 1, "Human" -> 0
  EXPECT_DOUBLE_EQ(r["scores"]["passage_count"].get<double>(), 50.0);
  EXPECT_DOUBLE_EQ(r["average"].get<double>(), 50.0);
  EXPECT_DOUBLE_EQ(r["by_length"]["trec"]["0-4k"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(r["by_length"]["trec"]["4-8k"].get<double>(), 0.0);
  EXPECT_EQ(r["samples"]["trec"].get<int>(), 2);
}

TEST(Rescore, RulerFileScoresPerTaskAndLength) {
  TempDir dir;
  const auto path = dir.file("ruler.jsonl");
  write(path,
        R"({"task": "niah_single_1", "pred": " 1234567.", "outputs": ["1234567"], "length": 4096})" "\n"
        R"({"task": "niah_single_1", "pred": "no", "outputs": ["1234567"], "length": 4096})" "\n"
        R"({"task": "qa_1", "pred": "Paris", "outputs": ["paris", "rome"], "length": 4096})" "\n"
        R"({"task": "vt", "pred": "AAAAA BBBBB", "outputs": ["AAAAA", "BBBBB", "CCCCC", "DDDDD"], "length": 8192})" "\n");
  const auto r = echokv::rescore_ruler(path);
  EXPECT_DOUBLE_EQ(r["scores"]["niah_single_1"]["4096"].get<double>(), 50.0);
  EXPECT_DOUBLE_EQ(r["scores"]["qa_1"]["4096"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(r["scores"]["vt"]["8192"].get<double>(), 50.0);
  EXPECT_DOUBLE_EQ(r["average"]["4096"].get<double>(), 75.0);
}

TEST(Rescore, MalformedInputNamesFileLineAndField) {
  TempDir dir;
  const auto bad = dir.file("bad.jsonl");
  write(bad, "{\"task\": \"vt\", \"pred\": \"x\", \"outputs\": [\"x\"]}\n{not json\n");
  const auto e1 = error_of([&] { echokv::rescore_ruler(bad); });
  EXPECT_NE(e1.find("bad.jsonl:2"), std::string::npos) << e1;
  const auto missing = dir.file("missing.jsonl");
  write(missing, "{\"dataset\": \"trec\", \"answers\": [\"a\"]}\n");
  const auto e2 = error_of([&] { echokv::rescore_longbench(missing, false); });
  EXPECT_NE(e2.find("'pred'"), std::string::npos) << e2;
  const auto unknown = dir.file("unknown.jsonl");
  write(unknown, "{\"dataset\": \"nosuch\", \"pred\": \"a\", \"answers\": [\"a\"]}\n");
  const auto e3 = error_of([&] { echokv::rescore_longbench(unknown, false); });
  EXPECT_NE(e3.find("nosuch"), std::string::npos) << e3;
  // A torn last line (an interrupted append) is tolerated only when asked.
  const auto torn = dir.file("torn.jsonl");
  write(torn, "{\"a\": 1}\n{\"a\": ");
  EXPECT_EQ(echokv::read_jsonl(torn, true).size(), 1u);
  EXPECT_NE(error_of([&] { echokv::read_jsonl(torn); }).find("torn.jsonl:2"), std::string::npos);
}

TEST(Rescore, ScoreCliPrintsJson) {
  TempDir dir;
  const auto path = dir.file("preds.jsonl");
  write(path, R"({"dataset": "hotpotqa", "pred": "the Eiffel Tower", "answers": ["Eiffel Tower"], "all_classes": null})" "\n");
  const auto run = run_binary("echokv-eval", "score --benchmark longbench --in " + path);
  ASSERT_EQ(run.status, 0) << run.out;
  EXPECT_NE(run.out.find("\"hotpotqa\": 100.0"), std::string::npos) << run.out;
  const auto bad = run_binary("echokv-eval", "score --benchmark longbench --in " + dir.file("none.jsonl"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("none.jsonl"), std::string::npos) << bad.out;
}
