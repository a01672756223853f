// The pretraining loop on a tiny config: loss goes down; a run killed with SIGKILL and
// resumed ends with exactly the weights of an uninterrupted run.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "io/safetensors.h"
#include "train/pretrainer.h"
#include "io/jsonl.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

// A pseudo-English corpus: sentences from a small grammar, blank-line separated paragraphs.
void write_corpus(const std::string& path) {
  const std::vector<std::string> subj = {"the farmer", "a small bird", "the old king", "my sister", "the river",
                                         "a quiet child", "the engine", "every sailor"};
  const std::vector<std::string> verb = {"watched", "carried", "found", "followed", "painted", "remembered", "crossed"};
  const std::vector<std::string> obj = {"the green field", "a heavy stone", "the northern road", "an empty boat",
                                        "the golden bell", "a long letter", "the winter garden"};
  const std::vector<std::string> adj = {
      "amber", "brave", "calm", "dusty", "eager", "faint", "gentle", "hollow", "icy", "jolly", "keen", "lively",
      "misty", "noble", "orange", "proud", "quick", "rapid", "silent", "tender", "upper", "vivid", "warm", "young",
      "bitter", "cheerful", "distant", "early", "fierce", "grand", "hidden", "humble", "little", "modern", "narrow",
      "patient", "plain", "royal", "sharp", "simple", "smooth", "steady", "strange", "sudden", "swift", "tired",
      "velvet", "wooden", "yellow", "bright", "cloudy", "frozen", "golden", "gloomy", "hungry", "lonely"};
  std::mt19937 rng(7);
  std::ofstream out(path);
  for (int p = 0; p < 1500; ++p) {
    for (int s = 0; s < 6; ++s)
      out << adj[rng() % adj.size()] << " " << subj[rng() % subj.size()] << " " << verb[rng() % verb.size()] << " "
          << obj[rng() % obj.size()]
          << (rng() % 3 == 0 ? " at dawn" : "") << ". ";
    out << "\n\n";
  }
}

std::string write_config(const TempDir& dir, int64_t total_steps) {
  write_corpus(dir.file("corpus.txt"));
  std::ofstream(dir.file("tiny.yaml")) << R"(name: tiny
work_dir: )" << dir.file("work") << R"(
output_dir: )" << dir.file("out") << R"(
seed: 7
threads: 1
corpus:
  sources: [{name: grammar, path: )" << dir.file("corpus.txt") << R"(, format: text}]
  document_chars: 600
  heldout_every: 20
tokenizer: {vocab_size: 320, max_sentences: 100000}
model: {hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 16,
        intermediate_size: 64, max_position_embeddings: 256}
train:
  lr: 1.0e-2
  warmup_steps: 2
  total_steps: )" << total_steps << R"(
  tokens_per_step: 1024
  micro_batch_tokens: 512
  checkpoint_every: 3
  log_every: 1
  eval_every: 1000
  curriculum:
    - {until_step: 1000, seq_len: 192, mix: {text: 0.5, retrieval: 0.3, copy: 0.2}}
eval: {heldout_sequences: 4, heldout_seq_len: 64, retrieval_samples: 4, retrieval_lengths: [192]}
)";
  return dir.file("tiny.yaml");
}

std::vector<double> losses(const std::string& metrics_path) {
  std::vector<double> out;
  std::istringstream in(read_text_file(metrics_path));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"].get<double>());
  }
  return out;
}

TEST(Pretrainer, LossGoesDownOnATinyConfig) {
  TempDir dir;
  auto config = PretrainConfig::load(write_config(dir, 30));
  PretrainRunOptions run;
  run.export_when_done = true;
  auto outcome = run_pretrain(config, run);
  EXPECT_TRUE(outcome.finished);
  auto l = losses(dir.file("work/metrics.jsonl"));
  ASSERT_EQ(l.size(), 30u);
  const double first = (l[0] + l[1] + l[2]) / 3, last = (l[27] + l[28] + l[29]) / 3;
  // 30 steps of 1K tokens: measured 5.55 -> 4.08 nats (uniform over 320 pieces is 5.77).
  EXPECT_LT(last, first * 0.8) << "first " << first << " last " << last;
  // The export is a loadable HF folder with its tokenizer.
  EXPECT_TRUE(file_exists(dir.file("out/config.json")));
  EXPECT_TRUE(file_exists(dir.file("out/model.safetensors")));
  EXPECT_TRUE(file_exists(dir.file("out/tokenizer.model")));
  const std::string card = read_text_file(dir.file("out/README.md"));
  EXPECT_NE(card.find("Held-out perplexity"), std::string::npos);
  EXPECT_NE(card.find("| 192 |"), std::string::npos);  // the retrieval row of the evaluated length
  ASSERT_TRUE(outcome.last_eval.contains("heldout_ppl"));
  const double ppl = outcome.last_eval["heldout_ppl"].get<double>();
  std::cerr << "held-out perplexity after 30 steps: " << ppl << "\n";
  EXPECT_LT(ppl, 320.0 / 4);  // well below uniform over the 320-piece vocabulary
}

TEST(Pretrainer, KilledAndResumedRunEqualsUninterruptedRun) {
  TempDir a, b;
  // Enough steps that the kill, sent as soon as the first checkpoint appears (polled every
  // 5 ms), lands mid-run even on a fast, idle machine (~70K tok/s here: ~0.6 s for 40 steps).
  const int64_t steps = 40;
  // Uninterrupted, in this process.
  auto config_a = PretrainConfig::load(write_config(a, steps));
  run_pretrain(config_a, {});
  // Interrupted: the real binary, SIGKILLed after its first checkpoint, then resumed.
  const std::string cfg_b = write_config(b, steps);
  const std::string bin = std::string(ECHOKV_BINARY_DIR) + "/bin/echokv-train";
  const pid_t pid = fork();
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    execl(bin.c_str(), bin.c_str(), "pretrain", "--config", cfg_b.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const std::string latest = b.file("work/checkpoints/latest");
  for (int i = 0; i < 12000 && !file_exists(latest); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(file_exists(latest)) << "no checkpoint appeared";
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run finished before it could be killed";
  nlohmann::json state;
  load_latest_checkpoint(b.file("work"), &state);
  EXPECT_LT(state["step"].get<int64_t>(), steps);
  auto config_b = PretrainConfig::load(cfg_b);
  auto outcome = run_pretrain(config_b, {});
  EXPECT_TRUE(outcome.finished);
  auto wa = load_safetensors(a.file("out/model.safetensors"));
  auto wb = load_safetensors(b.file("out/model.safetensors"));
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, t] : wa) EXPECT_TRUE(torch::equal(t, wb.at(name))) << name;
  // Every step is logged once: what the killed run logged past its checkpoint was dropped.
  auto logged_steps = [](const std::string& path) {
    std::vector<int64_t> steps;
    for (const auto& r : read_jsonl(path))
      if (r.contains("loss")) steps.push_back(r["step"].get<int64_t>());
    return steps;
  };
  EXPECT_EQ(logged_steps(b.file("work/metrics.jsonl")), logged_steps(a.file("work/metrics.jsonl")));
}

// A finished run continued on RULER-format samples (issue 17's recipe shape): the new run
// takes the old run's tokenizer and latest weights, trains on "ruler" mix samples at a
// longer length, and its evaluation carries the RULER probe per task and length.
TEST(Pretrainer, ContinuesAFinishedRunOnRulerSamples) {
  TempDir a, b;
  auto config_a = PretrainConfig::load(write_config(a, 3));
  PretrainRunOptions quiet;
  quiet.export_when_done = false;
  run_pretrain(config_a, quiet);
  std::string text = read_text_file(a.file("tiny.yaml"));
  auto swap = [&text](const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
  };
  swap(a.file("work"), b.file("work"));
  swap(a.file("out"), b.file("out"));
  swap("max_position_embeddings: 256", "max_position_embeddings: 1024");
  swap("total_steps: 3", "total_steps: 2");
  swap("tokens_per_step: 1024", "tokens_per_step: 2048");
  swap("micro_batch_tokens: 512", "micro_batch_tokens: 1024");
  swap("{until_step: 1000, seq_len: 192, mix: {text: 0.5, retrieval: 0.3, copy: 0.2}}",
       "{until_step: 1000, seq_len: 1024, mix: {text: 0.5, ruler: 0.5}}");
  swap("eval: {", "eval: {ruler_samples: 1, ruler_lengths: [1024], ");
  text += "init_from: " + a.file("work") + "\nruler: {data_dir: " + require_fixture("data/ruler") +
          ", tasks: [niah_single_1, fwe], prompt_weight: 0.1}\n";
  std::ofstream(b.file("cont.yaml")) << text;
  auto config_b = PretrainConfig::load(b.file("cont.yaml"));
  EXPECT_TRUE(config_b.has_ruler);
  // the weights it starts from are the old run's latest checkpoint
  nlohmann::json state;
  auto old = load_latest_checkpoint(a.file("work"), &state);
  auto init = load_init_weights(config_b);
  ASSERT_EQ(old.size(), init.size());
  for (const auto& [name, t] : old) EXPECT_TRUE(torch::equal(t, init.at(name))) << name;
  auto outcome = run_pretrain(config_b, {});
  EXPECT_TRUE(outcome.finished);
  EXPECT_EQ(read_text_file(b.file("work/tokenizer.model")), read_text_file(a.file("work/tokenizer.model")));
  ASSERT_TRUE(outcome.last_eval.contains("ruler")) << outcome.last_eval.dump();
  for (const char* task : {"niah_single_1", "fwe"}) {
    const double acc = outcome.last_eval["ruler"][task]["1024"].get<double>();
    EXPECT_GE(acc, 0.0);
    EXPECT_LE(acc, 1.0);
  }
  EXPECT_TRUE(outcome.last_eval["ruler_average"].contains("1024"));
  // the card says how the model was trained and shows the RULER probe
  const std::string card = read_text_file(b.file("out/README.md"));
  EXPECT_NE(card.find("RULER-format tasks"), std::string::npos);
  EXPECT_NE(card.find("| fwe |"), std::string::npos);
  EXPECT_NE(card.find("| average |"), std::string::npos);
  // a model config whose shapes differ from the checkpoint's is refused with the tensor named
  std::string wide = text;
  wide.replace(wide.find("hidden_size: 32"), 15, "hidden_size: 48");
  wide.replace(wide.find(b.file("work")), b.file("work").size(), b.file("work2"));
  std::ofstream(b.file("wide.yaml")) << wide;
  const std::string why = error_of([&] { load_init_weights(PretrainConfig::load(b.file("wide.yaml"))); });
  EXPECT_NE(why.find("shape"), std::string::npos) << why;
  EXPECT_NE(why.find("wide.yaml"), std::string::npos) << why;
  // a ruler mix kind without a ruler section is a config error
  std::string no_ruler = read_text_file(a.file("tiny.yaml"));
  no_ruler.replace(no_ruler.find("copy: 0.2"), 9, "ruler: 0.2");
  std::ofstream(b.file("noruler.yaml")) << no_ruler;
  EXPECT_NE(error_of([&] { PretrainConfig::load(b.file("noruler.yaml")); }).find("needs a ruler section"), std::string::npos);
}

TEST(Pretrainer, MixedLengthStageCyclesItsLengthsPerMicroBatch) {
  TempDir dir;
  std::string text = read_text_file(write_config(dir, 4));
  const std::string one = "{until_step: 1000, seq_len: 192, mix: {text: 0.5, retrieval: 0.3, copy: 0.2}}";
  text.replace(text.find(one), one.size(), "{until_step: 1000, seq_len: [128, 256], mix: {text: 1.0}}");
  text.replace(text.find("tokens_per_step: 1024"), 21, "tokens_per_step: 1536");
  std::ofstream(dir.file("mixed.yaml")) << text;
  auto config = PretrainConfig::load(dir.file("mixed.yaml"));
  ASSERT_EQ(config.curriculum.size(), 1u);
  EXPECT_EQ(config.curriculum[0].lengths, (std::vector<int64_t>{128, 256}));
  EXPECT_EQ(config.curriculum[0].seq_len, 256);
  run_pretrain(config, {});
  // micro-batches of 512 tokens sized by the longest length: 1536 / (2 x 256) = 3 per step;
  // micro-batch m of step s at lengths[(3 s + m) % 2]: 128, 256, 128 (step 0), 256, 128, 256 (step 1), ...
  // 4 x 128 or 2 x 256 tokens each: 512 whatever the length, 1536 per step.
  std::istringstream in(read_text_file(dir.file("work/metrics.jsonl")));
  int64_t steps = 0;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (!j.contains("loss")) continue;
    ++steps;
    EXPECT_EQ(j["tokens_seen"].get<int64_t>(), 1536 * j["step"].get<int64_t>());
    EXPECT_EQ(j["seq_lens"], nlohmann::json::array({128, 256}));
  }
  EXPECT_EQ(steps, 4);
  // a length outside the model's positions names the stage's value
  std::string bad = text;
  bad.replace(bad.find("seq_len: [128, 256]"), 19, "seq_len: [128, 512]");
  std::ofstream(dir.file("bad.yaml")) << bad;
  EXPECT_NE(error_of([&] { PretrainConfig::load(dir.file("bad.yaml")); }).find("curriculum seq_len 512 outside"),
            std::string::npos);
}

TEST(PretrainConfig, UnknownKeysAndBadValuesAreClearErrors) {
  TempDir dir;
  const std::string path = write_config(dir, 5);
  std::string text = read_text_file(path);
  std::ofstream(dir.file("typo.yaml")) << text << "\nlearning_rate: 3\n";
  try {
    PretrainConfig::load(dir.file("typo.yaml"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown key 'learning_rate'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("typo.yaml"), std::string::npos);
  }
  std::string bad = text;
  bad.replace(bad.find("lr: 1.0e-2"), 10, "lr: fast  ");
  std::ofstream(dir.file("bad.yaml")) << bad;
  try {
    PretrainConfig::load(dir.file("bad.yaml"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.lr"), std::string::npos) << e.what();
  }
  std::ofstream(dir.file("broken.yaml")) << "name: [unclosed\n";
  EXPECT_THROW(PretrainConfig::load(dir.file("broken.yaml")), Error);
}

}  // namespace
