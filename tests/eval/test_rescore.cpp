// `echokv-eval score`: re-scoring LongBench and RULER prediction files, and clear errors on
// malformed input.
#include <filesystem>
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
  write(path, R"({"dataset": "hotpotqa", "pred": "the Eiffel Tower", "answers": ["Eiffel Tower"], "all_classes": null, "length": 1200})" "\n");
  const auto run = run_binary("echokv-eval", "score --benchmark longbench --in " + path);
  ASSERT_EQ(run.status, 0) << run.out;
  EXPECT_NE(run.out.find("\"hotpotqa\": 100.0"), std::string::npos) << run.out;
  const auto bad = run_binary("echokv-eval", "score --benchmark longbench --in " + dir.file("none.jsonl"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("none.jsonl"), std::string::npos) << bad.out;
}

// RULER's own prediction files: no task field (the file name), the target from the folder.
TEST(Rescore, ReadsRulersOwnPredictionFiles) {
  TempDir dir;
  const std::string pred_dir = dir.file("llama/synthetic/4096/pred");
  std::filesystem::create_directories(pred_dir);
  write(pred_dir + "/niah_single_1.jsonl",
        R"({"index": 0, "pred": "1234567", "input": "...", "outputs": ["1234567"], "others": {}, "truncation": -1, "length": 3952})" "\n"
        R"({"index": 1, "pred": "none", "input": "...", "outputs": ["7654321"], "others": {}, "truncation": -1, "length": 3987})" "\n");
  write(pred_dir + "/qa_2-0.jsonl",
        R"({"index": 0, "pred": " Yes.", "input": "...", "outputs": ["yes"], "others": {}, "truncation": -1, "length": 4001})" "\n");
  const auto r = echokv::rescore_ruler(pred_dir);
  EXPECT_DOUBLE_EQ(r["scores"]["niah_single_1"]["4096"].get<double>(), 50.0);
  EXPECT_EQ(r["samples"]["niah_single_1"]["4096"].get<int>(), 2);
  EXPECT_DOUBLE_EQ(r["scores"]["qa_2"]["4096"].get<double>(), 100.0);  // chunk suffix dropped
  EXPECT_DOUBLE_EQ(r["average"]["4096"].get<double>(), 75.0);
}

// kvpress's predictions.csv: answers as Python list literals, quoted fields, kvpress's clean-up.
TEST(Rescore, ReadsKvpressPredictionsCsv) {
  TempDir dir;
  const auto path = dir.file("predictions.csv");
  write(path,
        "question,answer_prefix,answer,task,max_new_tokens,predicted_answer\n"
        "q1, Answer:,['1234567'],niah_single_1,128,\" The number is 1234567.\"\n"
        "q2, Answer:,\"['abc', \"\"it's\"\"]\",niah_multivalue,128,\"abc\nand more\"\n"
        "q3, Answer:,['Paris'],qa_1,32,paris\n");
  const auto r = echokv::rescore_ruler(path);
  EXPECT_DOUBLE_EQ(r["scores"]["niah_single_1"]["all"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(r["scores"]["niah_multivalue"]["all"].get<double>(), 50.0);  // "abc" found, "it's" not
  EXPECT_DOUBLE_EQ(r["scores"]["qa_1"]["all"].get<double>(), 100.0);
  const auto bad = dir.file("bad/predictions.csv");
  std::filesystem::create_directories(dir.file("bad"));
  write(bad, "task,answer,predicted_answer\nvt,[1, 2],x\n");
  EXPECT_NE(error_of([&] { echokv::rescore_ruler(bad); }).find("row 1"), std::string::npos);
}

// LongBench's pred/<model>/<dataset>.jsonl (no dataset field), LongBench-E names, and our
// records written in that layout score the same.
TEST(Rescore, ReadsAndWritesLongBenchsOfficialLayout) {
  TempDir dir;
  const std::string model_dir = dir.file("pred/llama2-7b-chat-4k");
  std::filesystem::create_directories(model_dir);
  write(model_dir + "/trec.jsonl",
        R"({"pred": "Location", "answers": ["Location"], "all_classes": ["Human", "Location"], "length": 100})" "\n"
        R"({"pred": "Human", "answers": ["Location"], "all_classes": ["Human", "Location"], "length": 5000})" "\n");
  const auto r = echokv::rescore_longbench(model_dir, false);
  EXPECT_DOUBLE_EQ(r["scores"]["trec"].get<double>(), 50.0);
  EXPECT_FALSE(r.contains("by_length"));
  const std::string e_dir = dir.file("pred_e/m");
  std::filesystem::create_directories(e_dir);
  write(e_dir + "/trec_e.jsonl",
        R"({"pred": "Location", "answers": ["Location"], "all_classes": ["Human", "Location"], "length": 100})" "\n"
        R"({"pred": "Human", "answers": ["Location"], "all_classes": ["Human", "Location"], "length": 9000})" "\n");
  const auto e = echokv::rescore_longbench(e_dir, false);
  EXPECT_DOUBLE_EQ(e["by_length"]["trec_e"]["0-4k"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(e["by_length"]["trec_e"]["8k+"].get<double>(), 0.0);
  // a record without length is an error, not the 0-4k bucket
  write(dir.file("nolen.jsonl"), R"({"dataset": "trec", "pred": "x", "answers": ["x"], "all_classes": ["x"]})" "\n");
  EXPECT_NE(error_of([&] { echokv::rescore_longbench(dir.file("nolen.jsonl"), true); }).find("length"), std::string::npos);
  // our records -> official layout -> the same scores
  std::vector<nlohmann::json> ours = {
      {{"dataset", "trec"}, {"pred", "Location"}, {"answers", {"Location"}}, {"all_classes", {"Human", "Location"}}, {"length", 100}, {"key", "trec/0"}},
      {{"dataset", "trec"}, {"pred", "Human"}, {"answers", {"Location"}}, {"all_classes", {"Human", "Location"}}, {"length", 5000}, {"key", "trec/1"}},
      {{"dataset", "trec"}, {"error", "could not run"}}};
  echokv::write_longbench_official(ours, dir.file("out/pred/full"));
  const auto back = echokv::read_jsonl(dir.file("out/pred/full/trec.jsonl"));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_FALSE(back[0].contains("dataset"));
  EXPECT_DOUBLE_EQ(echokv::rescore_longbench(dir.file("out/pred/full"), false)["scores"]["trec"].get<double>(), 50.0);
}
