// The contract every registered method keeps, checked by one parameterized test over the
// registry (a method that registers without an entry in `contracts()` fails here):
//   - keep-all settings reproduce the full cache's logits (1e-4, float32) through a prefill
//     of a prompt with a context / question split and 20 decode steps;
//   - compressing settings store no more than the full cache, and the measured stored / full
//     ratio after the prompt lies within the method's tolerance of its request (the tolerance
//     is what its size_knob() says it cannot meet exactly: sink + recent tokens, whole ranks,
//     the window, the question);
//   - reset() then reuse gives the same outputs (token-by-token methods), and one prepared
//     method prefilling the same prompt twice gives the same outputs (every method);
//   - a foreign option key is rejected, naming the method and the key.
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "cache/cache_factory.h"
#include "echo/head_plan.h"
#include "echo/reconstructor.h"
#include "io/model_fingerprint.h"
#include "methods/registry.h"
#include "model/config.h"
#include "model/random_model.h"
#include "model/session.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

struct Contract {
  std::string keep_all;     // YAML of settings that keep everything
  std::string compressing;  // YAML of settings that compress
  double ratio_tolerance;   // |measured - requested| allowed after the prompt (compressing)
};

// Shared by every case: a small random GQA model with the testbed tokenizer (KVzip's repeat
// prompts) and reconstructors for EchoKV: every head kept (keep-all), the paper's plan at 0.5,
// and a values-only plan (hybrid).
struct Fixture {
  TempDir tmp;
  std::string model_dir;
  std::shared_ptr<LlamaModel> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<int64_t> prompt, next;
  PromptSpan span;

  Fixture() {
    ModelConfig cfg;
    cfg.vocab_size = 4096;
    cfg.hidden_size = 64;
    cfg.intermediate_size = 128;
    cfg.num_hidden_layers = 4;
    cfg.num_attention_heads = 4;
    cfg.num_key_value_heads = 2;
    cfg.head_dim = 16;
    cfg.max_position_embeddings = 1024;
    cfg.tie_word_embeddings = true;
    cfg.bos_token_ids = {1};
    cfg.eos_token_ids = {2};
    model_dir = tmp.file("model");
    save_model_folder(model_dir, cfg, random_llama_tensors(cfg, 11));
    std::filesystem::copy_file(source_dir() + "/data/training/testbed-8l/tokenizer.model", model_dir + "/tokenizer.model");
    model = load_model_for_run(model_dir, "cpu", "float32", 1);
    tokenizer = load_tokenizer(model_dir);
    const PlanShape shape{cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim};
    const nlohmann::json meta = {{"base_model", model_dir}, {"base_model_fingerprint", model_fingerprint(model_dir)}};
    Reconstructor(HeadPlan::full(shape), true, 1).save(tmp.file("echo-all"), meta);
    Reconstructor(HeadPlan::paper_for_ratio(shape, 0.5, 2), true, 1).save(tmp.file("echo-0.5"), meta);
    HeadPlan values_only = HeadPlan::paper_for_ratio(shape, 0.5, 2);
    for (int l = 0; l < cfg.num_hidden_layers; ++l) values_only.at(l, KVKind::Key) = LayerKindPlan{};
    Reconstructor(values_only, true, 1).save(tmp.file("echo-v"), meta);
    prompt = {1};
    for (int64_t i = 1; i < 192; ++i) prompt.push_back(3 + (i * 977) % 4000);
    for (int64_t i = 0; i < 20; ++i) next.push_back(5 + (i * 131) % 4000);
    span.context_begin = 1;
    span.context_end = 176;  // 175 context tokens, 16 question tokens
  }
  std::string dir(const std::string& name) const { return tmp.file(name); }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

std::map<std::string, Contract> contracts(const Fixture& f) {
  const std::string echo = "echo_dir: " + f.dir("echo-all") + ", recent_tokens: 8";
  const std::string echo_half = "echo_dir: " + f.dir("echo-0.5") + ", recent_tokens: 8";
  const std::string values = "echo_dir: " + f.dir("echo-v") + ", recent_tokens: 8";
  const std::string calibration = "[" + source_dir() + "/README.md], calibration_tokens: 256";
  return {
      {"full", {"{cache: full}", "{cache: full}", 0.0}},
      // the request is the plan's ratio; sink 4 + recent 8 of 192 tokens are stored whole: + 12 / 192 x (1 - plan).
      {"echo", {"{cache: echo, " + echo + "}", "{cache: echo, " + echo_half + "}", 0.04}},
      {"low_rank", {"{cache: low_rank, ratio: 1.0}", "{cache: low_rank, ratio: 0.5}", 0.0}},  // rank 16 of 32
      {"streaming", {"{cache: streaming, window: 1024}", "{cache: streaming, ratio: 0.5}", 0.5 / 192}},  // a window beyond prompt + decode
      // the official kept count (strictly above the k-th score) rounds down by up to a pair per head.
      {"kvzip", {"{cache: kvzip, ratio: 1.0}", "{cache: kvzip, ratio: 0.5}", 0.02}},
      {"snapkv", {"{cache: snapkv, ratio: 1.0, obs_window: 8}", "{cache: snapkv, ratio: 0.5, obs_window: 8}", 1.0 / 192}},
      // the 8 window tokens keep every channel: 0.75 + 0.25 x 8 / 192.
      {"think", {"{cache: think, prune: 0.0, obs_window: 8}", "{cache: think, ratio: 0.75, obs_window: 8}", 0.011}},
      {"hybrid", {"{cache: hybrid, prune: 0.0, " + echo + "}", "{cache: hybrid, prune: 0.5, " + values + "}", 1.0}},
      // the most context tokens that fit, by bisection on the stored bytes: within a few tokens.
      {"echo_kvzip", {"{cache: echo_kvzip, context_ratio: 1.0, " + echo + "}",
                      "{cache: echo_kvzip, ratio: 0.3, " + echo_half + "}", 0.01}},
      {"knorm", {"{cache: knorm, ratio: 1.0}", "{cache: knorm, ratio: 0.5}", 1.0 / 192}},  // whole tokens per head
      {"random", {"{cache: random, ratio: 1.0}", "{cache: random, ratio: 0.5, seed: 3}", 1.0 / 192}},
      {"keydiff", {"{cache: keydiff, ratio: 1.0}", "{cache: keydiff, ratio: 0.5}", 1.0 / 192}},
      {"tova", {"{cache: tova, ratio: 1.0}", "{cache: tova, ratio: 0.5}", 1.0 / 192}},
      {"observed_attention", {"{cache: observed_attention, ratio: 1.0}", "{cache: observed_attention, ratio: 0.5}", 1.0 / 192}},
      // one top-k over a layer's heads: the layer's total is the per-head budget x heads.
      {"adakv", {"{cache: adakv, ratio: 1.0}", "{cache: adakv, ratio: 0.5, alpha_safeguard: 0.3}", 1.0 / 192}},
      // whole chunks of 20 context tokens: within a chunk.
      {"chunkkv", {"{cache: chunkkv, ratio: 1.0}", "{cache: chunkkv, ratio: 0.5, scorer: keydiff}", 20.0 / 192}},
      // beta 2 makes a real pyramid here (budgets 144, 112, 80, 48 of 192); per-layer rounding.
      {"pyramidkv", {"{cache: pyramidkv, ratio: 1.0, obs_window: 8}", "{cache: pyramidkv, ratio: 0.5, obs_window: 8, beta: 2}",
                     1.0 / 192}},
      {"expected_attention", {"{cache: expected_attention, ratio: 1.0}", "{cache: expected_attention, ratio: 0.5}", 1.0 / 192}},
      {"lagkv", {"{cache: lagkv, ratio: 1.0}", "{cache: lagkv, ratio: 0.5}", 1.0 / 192}},
      {"criticalkv", {"{cache: criticalkv, ratio: 1.0}", "{cache: criticalkv, ratio: 0.5, scorer: knorm, head_adaptive: true}",
                      1.0 / 192}},
      {"key_rerotation", {"{cache: key_rerotation, ratio: 1.0}", "{cache: key_rerotation, ratio: 0.5, scorer: knorm}", 1.0 / 192}},
      // a residual beyond prompt + decode keeps everything in full precision; 2 bits, group 32 quantizes
      {"kivi", {"{cache: kivi, residual: 1024, group_size: 32}", "{cache: kivi, bits: 2, group_size: 32, residual: 64}", 0.0}},
      // never reaching its target it is the full cache; compressing only while generating (no ratio)
      {"decoding", {"{cache: decoding, target_size: 100000}", "{cache: decoding, compression_interval: 4, target_size: 100}", 0.0}},
      // the ratio sets the retained tokens per head (the question's 16 stored whole): whole tokens per head and pair.
      {"minicache", {"{cache: minicache, ratio: 1.0}", "{cache: minicache, ratio: 0.7}", 1.0 / 192}},
      // the latent rank per request from the merged counts: within a whole rank (581 latent tokens of 24576 / rank).
      {"commonkv", {"{cache: commonkv, ratio: 1.0, layers_per_group: 1}",
                    "{cache: commonkv, ratio: 0.5, layers_per_group: 2, recent_tokens: 16}", 0.025}},
      // a residual beyond prompt + decode keeps the kept tokens in full precision; SnapKV's half at 2 bits (no ratio request)
      {"kivi_eviction", {"{cache: kivi_eviction, residual: 1024, group_size: 32, eviction: {cache: knorm, ratio: 1.0}}",
                         "{cache: kivi_eviction, bits: 2, group_size: 32, residual: 64, eviction: {cache: snapkv, ratio: 0.5, obs_window: 8}}",
                         0.0}},
      // whole heads stream: 152 of 192 tokens dropped by one of 8 heads is 0.099 of the bytes; rounding to a head: half that
      {"duo_attention", {"{cache: duo_attention, head_compression_ratio: 0.0, calibration: " + calibration + "}",
                         "{cache: duo_attention, ratio: 0.5, sink_tokens: 8, recent_tokens: 16, calibration: " + calibration + "}",
                         0.05}},
  };
}

std::unique_ptr<Method> prepared(const std::string& yaml) {
  auto& f = fixture();
  auto method = make_method_from_yaml(yaml, "contract");
  MethodContext context;
  context.model = f.model.get();
  context.model_dir = f.model_dir;
  context.tokenizer = f.tokenizer.get();
  context.chat.format = ChatFormat::kPlain;
  context.prefill_chunk = 64;
  method->prepare(context);
  return method;
}

// Logits [1 + steps, V] of the prompt's last position and of each decode step, and the
// stored / full ratio right after the prompt.
std::pair<torch::Tensor, double> run(const Method& method) {
  auto& f = fixture();
  torch::NoGradGuard no_grad;
  auto p = method.prefill(*f.model, f.prompt, f.span, static_cast<int64_t>(f.prompt.size() + f.next.size()) + 1, 64);
  const double ratio = static_cast<double>(p.cache->bytes()) / static_cast<double>(p.cache->full_bytes());
  EXPECT_LE(p.cache->bytes(), p.cache->full_bytes());
  std::vector<torch::Tensor> rows = {p.logits.to(torch::kFloat32).view({1, -1})};
  for (int64_t t : f.next)
    rows.push_back(f.model->forward(torch::tensor({t}, torch::kInt64).unsqueeze(0), *p.cache).to(torch::kFloat32).view({1, -1}));
  return {torch::cat(rows, 0), ratio};
}

class MethodContract : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(MethodContract, KeepAllIsFullRatioIsMetResetAndForeignKeys) {
  const std::string kind = GetParam();
  auto& f = fixture();
  const auto table = contracts(f);
  ASSERT_TRUE(table.count(kind)) << "method '" << kind << "' is registered without a contract entry in " << __FILE__;
  const Contract& c = table.at(kind);
  const auto reference = run(*prepared("{cache: full}")).first;

  auto keep_all = prepared(c.keep_all);
  const auto [kept, kept_ratio] = run(*keep_all);
  EXPECT_LE(max_abs_diff(kept, reference), 1e-4) << kind << " keep-all";
  EXPECT_NEAR(kept_ratio, 1.0, 1e-9) << kind << " keep-all stores everything";

  auto compressing = prepared(c.compressing);
  const auto [once, ratio] = run(*compressing);
  if (const auto requested = compressing->requested_ratio())
    EXPECT_NEAR(ratio, *requested, c.ratio_tolerance) << kind << ": " << compressing->size_knob();
  EXPECT_FALSE(compressing->size_knob().empty());
  const auto [twice, ratio_again] = run(*compressing);  // the same prepared method, again
  EXPECT_LE(max_abs_diff(once, twice), 1e-6) << kind;
  EXPECT_DOUBLE_EQ(ratio, ratio_again) << kind;

  if (!compressing->scores_prompt()) {  // token by token: reset() empties the cache for reuse
    auto cache = compressing->make_cache(*f.model, static_cast<int64_t>(f.prompt.size()), static_cast<int64_t>(f.prompt.size()));
    const auto first = sequence_logits(*f.model, f.prompt, 64, *cache);
    cache->reset();
    EXPECT_EQ(cache->next_position(), 0) << kind;
    const auto second = sequence_logits(*f.model, f.prompt, 64, *cache);
    EXPECT_LE(max_abs_diff(first, second), 1e-6) << kind;
  } else {
    EXPECT_THROW(compressing->make_cache(*f.model, 8, 8), Error) << kind;  // scoring methods need the prompt
  }

  const std::string foreign = c.compressing.substr(0, c.compressing.size() - 1) + ", window_of_another_method: 3}";
  const auto e = error_of([&] { make_method_from_yaml(foreign, "contract.yaml"); });
  EXPECT_NE(e.find("contract.yaml"), std::string::npos) << e;
  EXPECT_NE(e.find("'window_of_another_method' is not an option of " + kind), std::string::npos) << e;
}

INSTANTIATE_TEST_SUITE_P(Registered, MethodContract, ::testing::ValuesIn([] {
                           std::vector<std::string> kinds;
                           for (const auto& m : registered_methods()) kinds.push_back(m.kind);
                           return kinds;
                         }()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(MethodOptions, SizeKnobAliasesSweepsAndErrors) {
  // compression_ratio (kvpress's convention) = 1 - ratio.
  auto a = make_method_from_yaml("{cache: snapkv, compression_ratio: 0.7}");
  ASSERT_TRUE(a->requested_ratio().has_value());
  EXPECT_NEAR(*a->requested_ratio(), 0.3, 1e-12);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: snapkv, ratio: 0.3, compression_ratio: 0.7}"); }).find("not both"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: low_rank, ratio: 1.5}"); }).find("[0, 1]"), std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: kvzip, ratio: 0.5, context_ratio: 0.5}"); }).find("not both"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: streaming, ratio: 0.5, window: 8}"); }).find("not both"),
            std::string::npos);
  // A StreamingLLM window on SnapKV, a recent window on KVzip: foreign keys, named.
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: snapkv, window: 32}"); }).find("'window' is not an option of snapkv"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_method_from_yaml("{cache: kvzip, recent_tokens: 32}"); })
                .find("'recent_tokens' is not an option of kvzip"),
            std::string::npos);
  const auto unknown = error_of([] { make_method_from_yaml("{cache: zip}"); });
  EXPECT_NE(unknown.find("cache must be " + method_kinds_text()), std::string::npos) << unknown;
}
