// `echokv-eval --config`: a whole evaluation (RULER, NIAH, a LongBench-format JSONL written
// here, fidelity) for two methods on a small random model with a real tokenizer; outputs,
// scoring consistency, and resume (a second run redoes nothing).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/files.h"
#include "echo/head_plan.h"
#include "echo/reconstructor.h"
#include "eval/eval_config.h"
#include "io/jsonl.h"
#include "io/model_fingerprint.h"
#include "model/config.h"
#include "model/random_model.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

std::string make_model(const TempDir& tmp) {
  ModelConfig cfg;
  cfg.vocab_size = 4096;
  cfg.hidden_size = 64;
  cfg.intermediate_size = 128;
  cfg.num_hidden_layers = 2;
  cfg.num_attention_heads = 4;
  cfg.num_key_value_heads = 2;
  cfg.head_dim = 16;
  cfg.max_position_embeddings = 4096;
  cfg.tie_word_embeddings = true;
  cfg.bos_token_ids = {1};
  cfg.eos_token_ids = {2};
  const std::string dir = tmp.file("model");
  save_model_folder(dir, cfg, random_llama_tensors(cfg, 5));
  std::filesystem::copy_file(source_dir() + "/data/training/testbed-8l/tokenizer.model", dir + "/tokenizer.model");
  return dir;
}

}  // namespace

TEST(EvalRunner, RunsEveryBenchmarkForEveryMethodAndResumes) {
  TempDir tmp;
  const std::string model = make_model(tmp);
  const auto mc = ModelConfig::load(model);
  Reconstructor r(HeadPlan::paper_for_ratio({mc.num_hidden_layers, mc.num_key_value_heads, mc.head_dim}, 0.5, 2), true, 1);
  r.save(tmp.file("echo"), {{"base_model", model}, {"base_model_fingerprint", model_fingerprint(model)}});
  const std::string lb_dir = tmp.file("longbench");
  std::filesystem::create_directories(lb_dir);
  std::ofstream(lb_dir + "/hotpotqa.jsonl")
      << R"({"input": "Who wrote it?", "context": "Passage 1: It was written by Ann Smith in 1901.", "answers": ["Ann Smith"], "length": 12, "dataset": "hotpotqa", "language": "en", "all_classes": null, "_id": "a1"})" "\n"
      << R"({"input": "When?", "context": "Passage 1: It happened in 1901.", "answers": ["1901"], "length": 8, "dataset": "hotpotqa", "language": "en", "all_classes": null, "_id": "a2"})" "\n";
  std::ofstream(lb_dir + "/trec.jsonl")
      << R"({"input": "What city is the capital?", "context": "Question: Who is he?\nType: Individual\n", "answers": ["City"], "length": 10, "dataset": "trec", "language": "en", "all_classes": ["City", "Individual"], "_id": "t1"})" "\n";
  std::ofstream(tmp.file("text.jsonl")) << R"({"source": "t", "text": ")" << std::string(3000, 'a') << R"( The end."})" "\n";
  const std::string out = tmp.file("run");
  std::ofstream(tmp.file("eval.yaml")) << "model: " << model << "\nout_dir: " << out << "\nchat_format: plain\nthreads: 1\n"
      << "methods:\n  - {name: full, cache: full}\n  - {name: echo, cache: echo, echo_dir: " << tmp.file("echo")
      << ", sink_tokens: 4, recent_tokens: 16}\n"
      << "ruler: {data_dir: " << require_fixture("data/ruler") << ", tasks: [niah_single_1, vt], lengths: [1200], samples: 2}\n"
      << "niah: {haystack: " << require_fixture("data/ruler/PaulGrahamEssays.json")
      << ", lengths: [300, 500], depths: [0, 50, 100], tokens_to_generate: 8}\n"
      << "longbench: {data_dir: " << lb_dir << ", config_dir: " << require_fixture("data/longbench")
      << ", datasets: [hotpotqa, trec], max_length: 40}\n"
      << "fidelity: {source: jsonl, path: " << tmp.file("text.jsonl") << ", sequences: 2, seq_len: 96, chunk: 16}\n";
  auto run = run_binary("echokv-eval", "--config " + tmp.file("eval.yaml"));
  ASSERT_EQ(run.status, 0) << run.out;
  EXPECT_NE(run.out.find("ETA"), std::string::npos);
  for (const std::string m : {"full", "echo"}) {
    EXPECT_EQ(read_jsonl(out + "/predictions/" + m + "/ruler.jsonl").size(), 4u);
    EXPECT_EQ(read_jsonl(out + "/predictions/" + m + "/niah.jsonl").size(), 6u);
    EXPECT_EQ(read_jsonl(out + "/predictions/" + m + "/longbench.jsonl").size(), 3u);
    EXPECT_EQ(read_jsonl(out + "/predictions/" + m + "/fidelity.jsonl").size(), 2u);
  }
  const auto metrics = nlohmann::json::parse(read_text_file(out + "/metrics.json"));
  const auto& full = metrics["methods"]["full"];
  const auto& echo = metrics["methods"]["echo"];
  // The full cache against itself: zero KL, full agreement; echo stores fewer bytes.
  EXPECT_NEAR(full["fidelity"]["kl"].get<double>(), 0.0, 1e-9);
  EXPECT_DOUBLE_EQ(full["fidelity"]["top1"].get<double>(), 1.0);
  EXPECT_EQ(full["fidelity"]["tokens"].get<int64_t>(), 2 * 95);
  EXPECT_GT(echo["fidelity"]["kl"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(full["bytes_ratio"].get<double>(), 1.0);
  EXPECT_LT(echo["bytes_ratio"].get<double>(), 1.0);
  EXPECT_TRUE(full["ruler"]["scores"].contains("vt"));
  EXPECT_TRUE(full["longbench"]["scores"].contains("trec"));
  EXPECT_EQ(full["niah"]["grid"].size(), 2u);
  // The harness's own LongBench file re-scores to the same numbers.
  auto rescored = run_binary("echokv-eval", "score --benchmark longbench --in " + out + "/predictions/full/longbench.jsonl");
  ASSERT_EQ(rescored.status, 0) << rescored.out;
  const auto rj = nlohmann::json::parse(rescored.out);
  EXPECT_DOUBLE_EQ(rj["scores"]["hotpotqa"].get<double>(), full["longbench"]["scores"]["hotpotqa"].get<double>());
  const std::string report = read_text_file(out + "/report.md");
  EXPECT_NE(report.find("## RULER at 1200 tokens"), std::string::npos);
  EXPECT_NE(report.find("| echo |"), std::string::npos);
  // Every score carries its sample count and a bootstrap interval; the average's pools both tasks.
  EXPECT_EQ(full["niah"]["ci"]["method"], "bootstrap");
  EXPECT_EQ(full["niah"]["ci"]["n"].get<int64_t>(), 6);
  EXPECT_EQ(full["ruler"]["average_ci"]["1200"]["n"].get<int64_t>(), 4);
  EXPECT_NEAR(full["ruler"]["average_ci"]["1200"]["mean"].get<double>(), full["ruler"]["average"]["1200"].get<double>(), 0.01);
  EXPECT_EQ(full["ruler"]["ci"]["vt"]["1200"]["n"].get<int64_t>(), 2);
  EXPECT_NE(report.find("Paired difference of the average from `full` at 1200"), std::string::npos) << report;
  EXPECT_TRUE(std::filesystem::exists(out + "/niah.svg"));
  // Resume: nothing left to run, same metrics.
  auto again = run_binary("echokv-eval", "run --config " + tmp.file("eval.yaml"));
  ASSERT_EQ(again.status, 0) << again.out;
  EXPECT_NE(again.out.find(": 0 to run"), std::string::npos) << again.out;
  EXPECT_EQ(read_jsonl(out + "/predictions/echo/ruler.jsonl").size(), 4u);
}

TEST(EvalRunner, ConfigErrorsNameTheProblem) {
  TempDir tmp;
  std::ofstream(tmp.file("a.yaml")) << "model: m\nout_dir: o\nmethods: [{name: x, cache: zip}]\nfidelity: {path: p}\n";
  EXPECT_NE(error_of([&] { EvalConfig::load(tmp.file("a.yaml")); }).find("cache must be full, echo, low_rank, streaming, kvzip, snapkv, think, hybrid, echo_kvzip"), std::string::npos);
  std::ofstream(tmp.file("b.yaml")) << "model: m\nout_dir: o\nmethods: [{name: x}]\nrulr: {}\n";
  const auto e = error_of([&] { EvalConfig::load(tmp.file("b.yaml")); });
  EXPECT_NE(e.find("rulr"), std::string::npos) << e;
  std::ofstream(tmp.file("c.yaml")) << "model: m\nout_dir: o\nmethods: [{name: x}]\n";
  EXPECT_NE(error_of([&] { EvalConfig::load(tmp.file("c.yaml")); }).find("no benchmark"), std::string::npos);
}

// LongBench's prompt budget: the config's, model2maxlen.json's for a named model, or the
// model's window less the longest generation; and the new keys' errors name the problem.
TEST(EvalRunner, LongBenchBudgetAndBenchmarkOptions) {
  LongBenchEvalConfig lc;
  lc.config_dir = require_fixture("data/longbench");
  lc.datasets = {"hotpotqa", "gov_report"};  // generation 32 and 512
  lc.max_length = 1000;
  EXPECT_EQ(resolve_longbench_budget(lc, 4096).max_length, 1000);
  EXPECT_EQ(resolve_longbench_budget(lc, 4096).source, "config");
  lc.max_length = 0;
  lc.model_name = "llama2-7b-chat-4k";
  EXPECT_EQ(resolve_longbench_budget(lc, 4096).max_length, 3500);
  EXPECT_NE(resolve_longbench_budget(lc, 4096).source.find("model2maxlen"), std::string::npos);
  lc.model_name = "nosuch-model";
  EXPECT_NE(error_of([&] { resolve_longbench_budget(lc, 4096); }).find("nosuch-model"), std::string::npos);
  lc.model_name.clear();
  EXPECT_EQ(resolve_longbench_budget(lc, 131072).max_length, 131072 - 512);  // not Llama 2's 3500
  EXPECT_EQ(resolve_longbench_budget(lc, 131072).source, "max_position_embeddings 131072 - 512");

  TempDir tmp;
  auto config_error = [&](const std::string& body) {
    std::ofstream(tmp.file("x.yaml")) << "model: m\nout_dir: o\nmethods: [{name: x}]\n" << body;
    return error_of([&] { EvalConfig::load(tmp.file("x.yaml")); });
  };
  EXPECT_NE(config_error("niah: {setup: needle, haystack: h, lengths: [1], depths: [0]}\n").find("niah.setup"), std::string::npos);
  EXPECT_NE(config_error("ruler: {data_dir: d, lengths: [1], document_order: random}\n").find("document_order"), std::string::npos);
  EXPECT_NE(config_error("longbench: {data_dir: d, config_dir: c, datasets: [trec], chat_form: meta}\n").find("chat_form"), std::string::npos);
  std::ofstream(tmp.file("ok.yaml")) << "model: m\nout_dir: o\nmethods: [{name: x}]\nllama3_date_header: false\n"
                                     << "ruler: {data_dir: d, lengths: [1], template: meta-llama3}\n"
                                     << "niah: {setup: kamradt, haystack: h, lengths: [1], depths: [0], samples_per_cell: 3}\n";
  const auto ok = EvalConfig::load(tmp.file("ok.yaml"));
  EXPECT_FALSE(ok.llama3_date_header);
  EXPECT_EQ(ok.ruler->model_template, "meta-llama3");
  EXPECT_EQ(ok.niah->samples_per_cell, 3);
  EXPECT_EQ(ok.niah->question, "What is the best thing to do in San Francisco?");
}

TEST(EvalRunner, PromptScoringMethodsRunInTheHarness) {
  TempDir tmp;
  const std::string model = make_model(tmp);
  std::ofstream(tmp.file("text.jsonl")) << R"({"source": "t", "text": ")" << std::string(3000, 'a') << R"( The end."})" "\n";
  std::ofstream(tmp.file("calib.txt")) << "The quick brown fox jumps over the lazy dog. It was a sunny day in the park.\n";
  const auto mc = ModelConfig::load(model);
  const PlanShape shape{mc.num_hidden_layers, mc.num_key_value_heads, mc.head_dim};
  Reconstructor r(HeadPlan::paper_for_ratio(shape, 0.5, 2), true, 1);
  r.save(tmp.file("echo"), {{"base_model", model}, {"base_model_fingerprint", model_fingerprint(model)}});
  HeadPlan values_only = HeadPlan::paper_for_ratio(shape, 0.5, 2);
  for (int l = 0; l < mc.num_hidden_layers; ++l) values_only.at(l, KVKind::Key) = LayerKindPlan{};
  Reconstructor rv(values_only, true, 1);
  rv.save(tmp.file("echo-v"), {{"base_model", model}, {"base_model_fingerprint", model_fingerprint(model)}});
  const std::string out = tmp.file("run");
  std::ofstream(tmp.file("eval.yaml")) << "model: " << model << "\nout_dir: " << out << "\nchat_format: plain\nthreads: 1\n"
      << "methods:\n  - {name: full, cache: full}\n"
      << "  - {name: kvzip-1, cache: kvzip, context_ratio: 1.0}\n"
      << "  - {name: kvzip-0.3, cache: kvzip, context_ratio: 0.3, score_chunk: 100}\n"
      << "  - {name: kvzip-head, cache: kvzip, level: head, context_ratio: 0.5, calibration: [" << tmp.file("calib.txt") << "]}\n"
      << "  - {name: snapkv-1, cache: snapkv, ratio: 1.0, obs_window: 8}\n"
      << "  - {name: snapkv-0.5, cache: snapkv, ratio: 0.5, obs_window: 8}\n"
      << "  - {name: think-0.75, cache: think, ratio: 0.75, obs_window: 8}\n"
      << "  - {name: echo, cache: echo, echo_dir: " << tmp.file("echo") << ", recent_tokens: 8}\n"
      << "  - {name: echo-kvzip-1, cache: echo_kvzip, context_ratio: 1.0, echo_dir: " << tmp.file("echo") << ", recent_tokens: 8}\n"
      << "  - {name: echo-kvzip-0.3, cache: echo_kvzip, context_ratio: 0.3, echo_dir: " << tmp.file("echo") << ", recent_tokens: 8}\n"
      << "  - {name: hybrid-0, cache: hybrid, prune: 0.0, echo_dir: " << tmp.file("echo-v") << ", recent_tokens: 8}\n"
      << "  - {name: hybrid-0.5, cache: hybrid, prune: 0.5, echo_dir: " << tmp.file("echo-v") << ", recent_tokens: 8}\n"
      << "niah: {haystack: " << require_fixture("data/ruler/PaulGrahamEssays.json")
      << ", lengths: [300], depths: [50], tokens_to_generate: 8}\n"
      << "ruler: {data_dir: " << require_fixture("data/ruler") << ", tasks: [cwe], lengths: [1200], samples: 1}\n"
      << "fidelity: {source: jsonl, path: " << tmp.file("text.jsonl") << ", sequences: 2, seq_len: 96, chunk: 16, context_tokens: 64}\n";
  auto run = run_binary("echokv-eval", "--config " + tmp.file("eval.yaml"));
  ASSERT_EQ(run.status, 0) << run.out;
  const auto metrics = nlohmann::json::parse(read_text_file(out + "/metrics.json"));
  const auto& m = metrics["methods"];
  EXPECT_EQ(m["full"]["fidelity"]["tokens"].get<int64_t>(), 2 * 32);  // the tokens after the context
  // Keeping everything reproduces the full cache.
  EXPECT_NEAR(m["kvzip-1"]["fidelity"]["kl"].get<double>(), 0.0, 1e-6);
  EXPECT_NEAR(m["snapkv-1"]["fidelity"]["kl"].get<double>(), 0.0, 1e-6);
  EXPECT_DOUBLE_EQ(m["kvzip-1"]["fidelity"]["top1"].get<double>(), 1.0);
  // EchoKV x KVzip keeping every token is EchoKV; hybrid with nothing pruned is its values-only EchoKV.
  EXPECT_NEAR(m["echo-kvzip-1"]["fidelity"]["kl"].get<double>(), m["echo"]["fidelity"]["kl"].get<double>(), 1e-9);
  EXPECT_DOUBLE_EQ(m["echo-kvzip-1"]["bytes_ratio"].get<double>(), m["echo"]["bytes_ratio"].get<double>());
  EXPECT_LT(m["echo-kvzip-0.3"]["bytes_ratio"].get<double>(), m["echo"]["bytes_ratio"].get<double>());
  EXPECT_LT(m["hybrid-0.5"]["bytes_ratio"].get<double>(), m["hybrid-0"]["bytes_ratio"].get<double>());
  for (const std::string name : {"kvzip-0.3", "kvzip-head", "snapkv-0.5", "think-0.75", "hybrid-0", "hybrid-0.5"}) {
    EXPECT_LT(m[name]["bytes_ratio"].get<double>(), 1.0) << name;
    EXPECT_GT(m[name]["fidelity"]["kl"].get<double>(), 0.0) << name;
  }
  // KVzip's scoring pass is timed; NIAH prompts carry their context split.
  const auto recs = read_jsonl(out + "/predictions/kvzip-0.3/niah.jsonl");
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_GT(recs[0]["scoring_seconds"].get<double>(), 0.0);
  EXPECT_LT(recs[0]["bytes_ratio"].get<double>(), 0.5);
  EXPECT_TRUE(std::filesystem::exists(out + "/predictions/kvzip-head/head_scores.json"));
  // One scoring pass per context and chunking serves every KVzip method: kvzip-1 scored, the
  // EchoKV x KVzip methods (same 2000-token chunks) reuse it; kvzip-0.3 scores 100-token chunks.
  EXPECT_FALSE(read_jsonl(out + "/predictions/kvzip-0.3/niah.jsonl")[0].value("scores_reused", false));
  for (const std::string name : {"echo-kvzip-1", "echo-kvzip-0.3"}) {
    const auto rec = read_jsonl(out + "/predictions/" + name + "/niah.jsonl");
    ASSERT_EQ(rec.size(), 1u);
    EXPECT_TRUE(rec[0].value("scores_reused", false)) << name;
  }
  EXPECT_FALSE(read_jsonl(out + "/predictions/kvzip-1/niah.jsonl")[0].value("scores_reused", false));
  EXPECT_GT(m["kvzip-0.3"]["context_pairs_kept"].get<double>(), 0.2);
  EXPECT_LT(m["kvzip-0.3"]["context_pairs_kept"].get<double>(), 0.3);  // the official count: < int(N x 0.3) / N
  // cwe has a context / question split: KVzip and EchoKV x KVzip score it like any task.
  for (const std::string name : {"kvzip-0.3", "echo-kvzip-0.3", "snapkv-0.5"}) {
    const auto cwe = read_jsonl(out + "/predictions/" + name + "/ruler.jsonl");
    ASSERT_EQ(cwe.size(), 1u) << name;
    EXPECT_FALSE(cwe[0].contains("error")) << name << ": " << cwe[0].dump();
    EXPECT_LT(cwe[0]["prompt_bytes_ratio"].get<double>(), 0.6) << name;
  }
}

TEST(EvalRunner, PromptScoringMethodConfigErrors) {
  TempDir tmp;
  auto err = [&](const std::string& method, const std::string& extra = "") {
    std::ofstream(tmp.file("m.yaml")) << "model: m\nout_dir: o\nmethods: [" << method << "]\nfidelity: {path: p" << extra << "}\n";
    return error_of([&] { EvalConfig::load(tmp.file("m.yaml")); });
  };
  EXPECT_NE(err("{name: x, cache: kvzip, level: head}", ", context_tokens: 8").find("calibration"), std::string::npos);
  EXPECT_NE(err("{name: x, cache: kvzip, level: token}", ", context_tokens: 8").find("pair, uniform or head"), std::string::npos);
  EXPECT_NE(err("{name: x, cache: think, ratio: 0.4}", ", context_tokens: 8").find("[0.5, 1]"), std::string::npos);
  EXPECT_NE(err("{name: x, cache: snapkv, kernel: 4}", ", context_tokens: 8").find("odd kernel"), std::string::npos);
  EXPECT_NE(err("{name: x, cache: snapkv}").find("context_tokens"), std::string::npos);
}

// `ratio: [..]` expands an entry; --method / --ratio / --set / --fraction change a config
// without editing it (every key still checked), and the run writes the config as run.
TEST(EvalRunner, SweepsAndCommandLineOverrides) {
  TempDir tmp;
  std::ofstream(tmp.file("s.yaml")) << "model: m\nout_dir: o\nmethods:\n  - {name: full}\n"
      << "  - {name: snap, cache: snapkv, ratio: [0.7, 0.5, 0.3], obs_window: 8}\n"
      << "  - {name: kv, cache: kvzip, context_ratio: 0.5}\n"
      << "fidelity: {path: p, context_tokens: 8}\n";
  const auto c = EvalConfig::load(tmp.file("s.yaml"));
  std::vector<std::string> names;
  for (const auto& m : c.methods) names.push_back(m.name);
  EXPECT_EQ(names, (std::vector<std::string>{"full", "snap-0.7", "snap-0.5", "snap-0.3", "kv"}));
  EXPECT_NEAR(*c.methods[2].method->requested_ratio(), 0.5, 1e-12);
  EXPECT_NE(c.yaml.find("[0.7, 0.5, 0.3]"), std::string::npos);  // the file as written
  // Paths in the file resolve beside it (the config runs from any directory).
  EXPECT_EQ(c.model, tmp.file("m"));
  EXPECT_EQ(c.out_dir, tmp.file("o"));
  EXPECT_EQ(c.fidelity->path, tmp.file("p"));

  EvalOverrides o;
  o.methods = {"snap-0.5", "kv"};
  o.ratio = 0.25;
  o.settings = {"methods.obs_window=4", "fidelity.sequences=3"};
  o.fraction = 0.5;
  // kv has no obs_window: the override reaches every kept method and kvzip rejects it.
  const auto foreign = error_of([&] { EvalConfig::load(tmp.file("s.yaml"), o); });
  EXPECT_NE(foreign.find("'obs_window' is not an option of kvzip"), std::string::npos) << foreign;
  o.methods = {"snap-0.5"};
  const auto d = EvalConfig::load(tmp.file("s.yaml"), o);
  ASSERT_EQ(d.methods.size(), 1u);
  EXPECT_EQ(d.methods[0].name, "snap-0.5@0.25");
  EXPECT_NEAR(*d.methods[0].method->requested_ratio(), 0.25, 1e-12);
  EXPECT_EQ(d.methods[0].method->options_json()["obs_window"].get<int64_t>(), 4);
  EXPECT_EQ(d.fidelity->sequences, 3);
  EXPECT_DOUBLE_EQ(d.fraction, 0.5);
  EXPECT_NE(d.yaml.find("snap-0.5@0.25"), std::string::npos);
  EXPECT_EQ(d.model, tmp.file("m"));  // untouched by the overrides: still beside the config
  // A path typed on the command line means the working directory, not the config's folder.
  o.settings = {"out_dir=elsewhere/run", "fidelity.path=/abs/p"};
  const auto e = EvalConfig::load(tmp.file("s.yaml"), o);
  EXPECT_EQ(e.out_dir, "elsewhere/run");
  EXPECT_EQ(e.fidelity->path, "/abs/p");
  o.methods = {"nope"};
  EXPECT_NE(error_of([&] { EvalConfig::load(tmp.file("s.yaml"), o); }).find("--method nope"), std::string::npos);
  o.methods = {};
  o.settings = {"ruler"};
  EXPECT_NE(error_of([&] { EvalConfig::load(tmp.file("s.yaml"), o); }).find("expected key=value"), std::string::npos);
  o.settings = {"fidelity.seqences=3"};  // a typo is still an unknown key
  o.ratio.reset();
  EXPECT_NE(error_of([&] { EvalConfig::load(tmp.file("s.yaml"), o); }).find("seqences"), std::string::npos);
  o.settings = {};
  o.fraction = 1.5;
  EXPECT_NE(error_of([&] { EvalConfig::load(tmp.file("s.yaml"), o); }).find("fraction must be in (0, 1]"), std::string::npos);
}

TEST(EvalRunner, FractionRunsTheFirstSamplesOfEachBenchmark) {
  TempDir tmp;
  const std::string model = make_model(tmp);
  std::ofstream(tmp.file("text.jsonl")) << R"({"source": "t", "text": ")" << std::string(3000, 'a') << R"( The end."})" "\n";
  const std::string out = tmp.file("run");
  std::ofstream(tmp.file("f.yaml")) << "model: " << model << "\nout_dir: " << out << "\nthreads: 1\n"
      << "methods:\n  - {name: full}\n  - {name: stream, cache: streaming, window: 16, sink_tokens: 4}\n"
      << "fidelity: {source: jsonl, path: " << tmp.file("text.jsonl") << ", sequences: 4, seq_len: 64, chunk: 16}\n";
  auto run = run_binary("echokv-eval", "--config " + tmp.file("f.yaml") + " --fraction 0.5 --method stream --quiet");
  ASSERT_EQ(run.status, 0) << run.out;
  EXPECT_EQ(read_jsonl(out + "/predictions/stream/fidelity.jsonl").size(), 2u);  // ceil(0.5 x 4)
  EXPECT_FALSE(std::filesystem::exists(out + "/predictions/full"));
  EXPECT_NE(read_text_file(out + "/config.yaml").find("fraction: 0.5"), std::string::npos);
}
