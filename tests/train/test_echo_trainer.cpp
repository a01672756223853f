// EchoKV reconstructor training on stories260K (frozen): objectives, gradient isolation,
// loss decrease, SIGKILL + resume equals an uninterrupted run, folder loading checks.
#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "cache/cache_factory.h"
#include "core/error.h"
#include "core/files.h"
#include "echo/reconstructor.h"
#include "io/safetensors.h"
#include "model/attention.h"
#include "train/echo_objectives.h"
#include "train/echo_trainer.h"
#include "train/training_checkpoint.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

std::string stories() { return require_fixture("fixtures/reference/stories260K"); }

std::string write_config(const TempDir& dir, int64_t s1, int64_t s2, const std::string& extra = "") {
  const std::string path = dir.file("echo.yaml");
  std::ofstream(path) << "model: " << stories() << "\n"
                      << "plan: {strategy: paper, ratio: 0.5}\n"
                      << "data: {source: ids, ids_file: " << stories() << "/expected.safetensors, ids_tensor: "
                      << "sampled_ids, sequences: 3, seq_len: 128, validation_sequences: 1}\n"
                      << "attention: {sink_tokens: 4, recent_tokens: 32}\n"
                      << "stage1: {steps: " << s1 << ", lr: 5.0e-3}\n"
                      << "stage2: {steps: " << s2 << ", lr: 5.0e-3}\n"
                      << "checkpoint_every: 3\nlog_every: 2\nthreads: 1\n"
                      << "output_dir: " << dir.file("out") << "\n"
                      << extra;
  return path;
}

std::vector<int64_t> fixture_ids(int64_t row, int64_t n) {
  auto t = load_safetensors(stories() + "/expected.safetensors").at("sampled_ids")[row].slice(0, 0, n).contiguous();
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
}

}  // namespace

TEST(EchoObjectives, ExactWindowAttentionEqualsModelAttention) {
  torch::manual_seed(5);
  const int64_t B = 1, Hq = 4, Hkv = 2, T = 37, D = 8;
  auto q = torch::randn({B, Hq, T, D}), k = torch::randn({B, Hkv, T, D}), v = torch::randn({B, Hkv, T, D});
  QueryPositions qpos = make_query_positions(0, T, torch::kCPU);
  AttentionOptions opts;
  opts.scale = 1.0 / std::sqrt(double(D));
  auto want = attend_blocks(q, qpos, [&](const std::function<void(const KVBlock&)>& visit) {
    KVBlock b;
    b.k = k;
    b.v = v;
    b.positions = torch::arange(T);
    b.min_position = 0;
    b.max_position = T - 1;
    b.is_only = true;
    visit(b);
  }, opts);
  // Rebuilt == exact: plain causal attention whatever the window.
  EXPECT_LE(max_abs_diff(attention_with_exact_window(q, k, v, k, v, 4, 8, opts.scale, std::nullopt), want), 1e-5);
  // Garbage rebuilt K/V never reach a query whose whole past is sink + recent.
  auto garbage = torch::randn({B, Hkv, T, D}) * 100;
  auto out = attention_with_exact_window(q, k, v, garbage, garbage, 4, 8, opts.scale, std::nullopt);
  EXPECT_LE(max_abs_diff(out.slice(2, 0, 13), want.slice(2, 0, 13)), 1e-5);  // queries 0..12: j >= i-8 or j < 4
  EXPECT_GT(max_abs_diff(out.slice(2, 13), want.slice(2, 13)), 1e-2);
}

TEST(EchoObjectives, GradientsReachOnlyTheReconstructors) {
  auto model = LlamaModel::load(stories());
  const auto& mc = model->config();
  auto plan = HeadPlan::paper_for_ratio({mc.num_hidden_layers, mc.num_key_value_heads, mc.head_dim}, 0.5, 4);
  Reconstructor r(plan, true, 42);
  for (auto& p : r.parameters()) p.requires_grad_(true);
  auto t = run_teacher(*model, fixture_ids(0, 96));
  auto rebuild = trained_rebuild(r);
  auto loss = output_mse(*model, r, rebuild, 1, t, 4, 16) + kv_mse(r, rebuild, 2, KVKind::Key, t, 4);
  loss.backward();
  for (const auto& [name, w] : model->named_tensors()) {
    EXPECT_FALSE(w.requires_grad()) << name;
    EXPECT_FALSE(w.grad().defined()) << name;
  }
  int with_grad = 0;
  for (const auto& p : r.parameters()) with_grad += p.grad().defined() && p.grad().abs().sum().item<double>() > 0;
  EXPECT_GE(with_grad, 3);  // layer 1 K/V (O-MSE) and layer 2 K (KV-MSE) weights at least
  // A perfect map (dropped = truth) gives zero loss in both stages.
  RebuildFn perfect = [&](int l, KVKind kind, const TeacherSequence& s) {
    return s.features(kind)[l].index_select(-1, r.dropped_index(l, kind));
  };
  EXPECT_EQ(kv_mse(r, perfect, 2, KVKind::Value, t, 4).item<double>(), 0.0);
  EXPECT_LE(output_mse(*model, r, perfect, 1, t, 4, 16).item<double>(), 1e-12);
}

TEST(EchoTrainer, LossesFallAndKilledRunResumesBitIdentically) {
  TempDir a, b;
  auto config_a = EchoTrainConfig::load(write_config(a, 12, 6));
  EchoRunOptions quiet;
  quiet.progress = false;
  auto outcome = run_echo_training(config_a, quiet);
  ASSERT_TRUE(outcome.finished);
  const auto& v = outcome.validation;
  const double initial = v["initial"]["mean_k_mse"].get<double>() + v["initial"]["mean_v_mse"].get<double>();
  const double after1 = v["stage1"]["mean_k_mse"].get<double>() + v["stage1"]["mean_v_mse"].get<double>();
  EXPECT_LT(after1, initial) << v.dump();
  EXPECT_LE(v["stage2"]["mean_o_mse"].get<double>(), v["stage1"]["mean_o_mse"].get<double>()) << v.dump();
  for (const char* f : {"reconstructors.safetensors", "plan.json", "echo.json", "summary.md", "metrics.jsonl"})
    EXPECT_TRUE(file_exists(a.file(std::string("out/") + f))) << f;

  // The real binary, SIGKILLed after its first checkpoint, then resumed.
  const std::string cfg_b = write_config(b, 12, 6);
  const std::string bin = std::string(ECHOKV_BINARY_DIR) + "/bin/echokv-train";
  const pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    execl(bin.c_str(), bin.c_str(), "echo", "--config", cfg_b.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const std::string latest = b.file("out/checkpoints/latest");
  // Polled every 5 ms so the kill lands mid-run even on a fast, idle machine.
  for (int i = 0; i < 12000 && !file_exists(latest); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(file_exists(latest)) << "no checkpoint appeared";
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run finished before it could be killed";
  auto resumed = run_echo_training(EchoTrainConfig::load(cfg_b), quiet);
  ASSERT_TRUE(resumed.finished);
  auto wa = load_safetensors(a.file("out/reconstructors.safetensors"));
  auto wb = load_safetensors(b.file("out/reconstructors.safetensors"));
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, t] : wa) EXPECT_TRUE(torch::equal(t, wb.at(name))) << name;

  // A finished run, started again, trains nothing and leaves the same weights.
  auto again = run_echo_training(config_a, quiet);
  EXPECT_TRUE(again.finished);
  auto wa2 = load_safetensors(a.file("out/reconstructors.safetensors"));
  for (const auto& [name, t] : wa) EXPECT_TRUE(torch::equal(t, wa2.at(name))) << name;

  // The folder loads for its base model and is refused for another one.
  auto loaded = Reconstructor::load(a.file("out"), stories());
  EXPECT_EQ(loaded.parameter_count(), Reconstructor(loaded.plan(), true, 0).parameter_count());
  const std::string other = require_fixture("fixtures/reference/llama-gqa-f32-sharded");
  const auto msg = error_of([&] { Reconstructor::load(a.file("out"), other); });
  EXPECT_NE(msg.find("trained for another base model"), std::string::npos) << msg;
}

TEST(EchoTrainConfig, UnknownKeysAndBadPlansAreClearErrors) {
  TempDir dir;
  auto msg = error_of([&] { EchoTrainConfig::load(write_config(dir, 1, 1, "stage3: {steps: 1}\n")); });
  EXPECT_NE(msg.find("unknown key 'stage3'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("echo.yaml"), std::string::npos) << msg;
  // A plan for another shape is refused when training starts.
  HeadPlan::paper(PlanShape{4, 2, 8}, 2, 0).save(dir.file("plan.json"));
  std::string text = read_text_file(write_config(dir, 1, 1));
  text.replace(text.find("{strategy: paper, ratio: 0.5}"), std::string("{strategy: paper, ratio: 0.5}").size(),
               "{file: " + dir.file("plan.json") + "}");
  std::ofstream(dir.file("echo2.yaml")) << text;
  msg = error_of([&] { run_echo_training(EchoTrainConfig::load(dir.file("echo2.yaml"))); });
  EXPECT_NE(msg.find("plan is for 4 layers"), std::string::npos) << msg;
  // A ratio next to a plan file would be ignored (the file fixes the kept heads): refused.
  text.replace(text.find("{file: "), 7, "{ratio: 0.3, file: ");
  std::ofstream(dir.file("echo3.yaml")) << text;
  msg = error_of([&] { EchoTrainConfig::load(dir.file("echo3.yaml")); });
  EXPECT_NE(msg.find("plan.ratio cannot be given with plan.file"), std::string::npos) << msg;
  EXPECT_NE(msg.find("echo3.yaml"), std::string::npos) << msg;
}

TEST(EchoObjectives, LeastSquaresInitIsStage1Optimum) {
  auto model = LlamaModel::load(stories());
  const auto& mc = model->config();
  auto plan = HeadPlan::paper_for_ratio({mc.num_hidden_layers, mc.num_key_value_heads, mc.head_dim}, 0.5, 4);
  Reconstructor r(plan, true, 42);
  std::vector<TeacherSequence> teachers = {run_teacher(*model, fixture_ids(0, 200)), run_teacher(*model, fixture_ids(1, 200))};
  least_squares_init(r, teachers, 4, 0.0);
  for (auto& p : r.parameters()) p.requires_grad_(true);
  auto rebuild = trained_rebuild(r);
  torch::Tensor loss;
  for (int l = 0; l < mc.num_hidden_layers; ++l)
    for (KVKind kind : {KVKind::Key, KVKind::Value})
      if (r.compressed(l, kind)) {
        // Equal token counts per sequence: the mean of per-sequence MSEs is the pooled MSE.
        auto term = kv_mse(r, rebuild, l, kind, teachers[0], 4) + kv_mse(r, rebuild, l, kind, teachers[1], 4);
        loss = loss.defined() ? loss + term : term;
        EXPECT_LT(kv_mse(r, rebuild, l, kind, teachers[0], 4).item<double>(),
                  kv_mse(r, zeros_rebuild(r), l, kind, teachers[0], 4).item<double>());
      }
  loss.backward();
  // Stationary point of the pooled squared error: gradients vanish relative to the weights' scale.
  for (const auto& [name, p] : r.named_tensors())
    EXPECT_LT(p.grad().abs().max().item<double>(), 1e-3 * std::max(1.0, p.abs().max().item<double>())) << name;
}
