#include "train/pretrainer.h"

#include "core/run_lock.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "core/clock.h"
#include "core/error.h"
#include "core/files.h"
#include "io/jsonl.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "io/safetensors.h"
#include "model/random_model.h"
#include "model/train_forward.h"
#include "train/model_card.h"
#include "train/training_checkpoint.h"

namespace echokv {

namespace fs = std::filesystem;

namespace {

// Deterministic RNG for (seed, step, stream): resuming at a step regenerates its data.
std::mt19937_64 step_rng(uint64_t seed, int64_t step, int64_t stream) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(step),
                    static_cast<uint32_t>(step >> 32), static_cast<uint32_t>(stream)};
  return std::mt19937_64(seq);
}

std::string pick_kind(const std::map<std::string, double>& mix, std::mt19937_64& rng) {
  double total = 0;
  for (const auto& kv : mix) total += kv.second;
  std::uniform_real_distribution<double> u(0, total);
  double x = u(rng);
  for (const auto& kv : mix) {
    if (x < kv.second) return kv.first;
    x -= kv.second;
  }
  return mix.rbegin()->first;
}

struct Batch {
  torch::Tensor inputs;   // [B, T] int64
  torch::Tensor targets;  // [B, T] int64
  torch::Tensor weights;  // [B, T] float32
};

Batch make_batch(const std::vector<TaskSample>& samples) {
  const int64_t b = static_cast<int64_t>(samples.size());
  const int64_t t = static_cast<int64_t>(samples[0].tokens.size()) - 1;
  auto tokens = torch::empty({b, t + 1}, torch::kInt64);
  auto weights = torch::empty({b, t + 1}, torch::kFloat32);
  for (int64_t i = 0; i < b; ++i) {
    if (static_cast<int64_t>(samples[i].tokens.size()) != t + 1) throw Error("internal: ragged batch");
    std::memcpy(tokens[i].data_ptr<int64_t>(), samples[i].tokens.data(), (t + 1) * sizeof(int64_t));
    std::memcpy(weights[i].data_ptr<float>(), samples[i].weights.data(), (t + 1) * sizeof(float));
  }
  return {tokens.narrow(1, 0, t), tokens.narrow(1, 1, t), weights.narrow(1, 1, t)};
}

// Weighted mean cross-entropy: sum(w * ce) / sum(w).
torch::Tensor weighted_loss(const torch::Tensor& logits, const Batch& batch) {
  auto ce = torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), batch.targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  auto w = batch.weights.reshape({-1});
  return (ce * w).sum() / w.sum();
}

std::shared_ptr<LlamaModel> view_model(const PretrainConfig& c, const std::map<std::string, torch::Tensor>& master,
                                       torch::ScalarType dtype) {
  // float32: the model's tensors are the master tensors themselves; bfloat16: differentiable
  // casts of them, so gradients still reach the float32 masters.
  return LlamaModel::from_tensors(c.model, master, torch::kCPU, dtype, "<training>");
}

// ---- checkpoints: <work>/checkpoints/step-N/{weights.safetensors, optimizer.pt, state.json};
// <work>/checkpoints/latest names the newest complete one (written last, atomically).
std::string checkpoints_dir(const std::string& work) { return join_path(work, "checkpoints"); }

void save_checkpoint(const std::string& work, int64_t step, const std::map<std::string, torch::Tensor>& master,
                     torch::optim::AdamW& optimizer, const nlohmann::json& state) {
  std::vector<std::pair<std::string, torch::Tensor>> list(master.begin(), master.end());
  save_training_checkpoint(checkpoints_dir(work), "step-" + std::to_string(step), list, optimizer, state);
}

// A resumed run logs the steps after its checkpoint again: the records a killed run wrote past
// the checkpoint (and a torn last line) are dropped first, so each step appears once.
void drop_records_after_step(const std::string& path, int64_t step) {
  if (!file_exists(path)) return;
  std::string kept;
  bool dropped = false;
  for (const auto& r : read_jsonl(path, true)) {
    if (r.value("step", int64_t{0}) > step) {
      dropped = true;
      continue;
    }
    kept += r.dump() + "\n";
  }
  const std::string text = read_text_file(path);
  if (dropped || (!text.empty() && text.back() != '\n')) write_text_atomic(path, kept);
}

}  // namespace

std::map<std::string, torch::Tensor> load_latest_checkpoint(const std::string& work, nlohmann::json* state) {
  const std::string dir = latest_training_checkpoint(checkpoints_dir(work));
  if (dir.empty()) return {};
  return load_training_checkpoint(dir, state);
}

nlohmann::json heldout_perplexity(const LlamaModel& model, const PretrainConfig& c, const PretrainData& data, int64_t n_seq) {
  torch::NoGradGuard no_grad;
  TaskGenerator gen(*data.tokenizer, data.heldout, data.words, c.tasks);
  nlohmann::json out;
  // Held-out perplexity over fixed sequences of held-out text.
  double loss_sum = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < n_seq; ++i) {
    auto rng = step_rng(c.seed ^ 0x5eed, -1, i);
    auto batch = make_batch({gen.text(rng, c.eval_heldout_seq_len + 1)});
    auto logits = training_logits(model, batch.inputs);
    auto ce = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), batch.targets.reshape({-1}),
                                                   torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    loss_sum += ce.item<double>();
    count += batch.targets.numel();
  }
  out["heldout_loss"] = loss_sum / count;
  out["heldout_ppl"] = std::exp(loss_sum / count);
  out["heldout_tokens"] = count;
  return out;
}

namespace {

// Teacher-forced exact match of held-out RULER samples: evaluation seeds (top bit clear) and
// RULER's own essay haystack, i.e. what echokv-eval generates and the training never draws
// (RulerTrainingSampler::generate / encode: the sampler's filler text plays no part).
void ruler_probe(const LlamaModel& model, const PretrainConfig& c, const RulerTrainingSampler& ruler, bool full,
                 nlohmann::json& out) {
  const int64_t samples = full ? c.eval_ruler_samples : std::max<int64_t>(2, c.eval_ruler_samples / 4);
  for (int64_t len : c.eval_ruler_lengths) {
    double sum = 0;
    for (const auto& task : ruler.tasks()) {
      int64_t right = 0;
      for (int64_t i = 0; i < samples; ++i) {
        auto rng = step_rng(c.seed ^ 0x7e1e, len, i);
        const uint64_t seed = rng() >> 1;  // top bit clear: never a training seed
        const auto [ids, answer_begin] = ruler.encode(ruler.generate(task, len, seed, 0, 0));
        auto input = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end() - 1), torch::kInt64).unsqueeze(0);
        auto pred = training_logits(model, input).argmax(-1)[0];
        bool ok = true;
        for (int64_t p = answer_begin; p + 1 < static_cast<int64_t>(ids.size()); ++p)
          ok = ok && pred[p - 1].item<int64_t>() == ids[static_cast<size_t>(p)];
        right += ok;
      }
      const double acc = static_cast<double>(right) / samples;
      out["ruler"][task][std::to_string(len)] = acc;
      sum += acc;
    }
    out["ruler_average"][std::to_string(len)] = sum / static_cast<double>(ruler.tasks().size());
  }
  out["ruler_samples"] = samples;
}

}  // namespace

void adopt_init_run(const PretrainConfig& c) {
  if (c.init_from.empty()) return;
  fs::create_directories(c.work_dir);
  for (const char* name : {"tokenizer.model", "words.txt", "corpus-sources.json"}) {
    const std::string from = join_path(c.init_from, name), to = join_path(c.work_dir, name);
    if (file_exists(to)) continue;
    if (!file_exists(from)) fail(c.source, "init_from: " + from + " is missing (expected a finished run's work_dir)");
    write_text_atomic(to, read_text_file(from));
  }
}

std::map<std::string, torch::Tensor> load_init_weights(const PretrainConfig& c) {
  nlohmann::json state;
  auto weights = load_latest_checkpoint(c.init_from, &state);
  if (weights.empty()) fail(c.source, "init_from: " + c.init_from + " holds no checkpoint");
  const auto fresh = random_llama_tensors(c.model, c.seed, c.init_std);
  for (const auto& [name, t] : fresh) {
    auto it = weights.find(name);
    if (it == weights.end()) fail(c.source, "init_from: the checkpoint lacks " + name);
    if (it->second.sizes() != t.sizes())
      fail(c.source, "init_from: " + name + " has shape " + c10::str(it->second.sizes()) + ", the model config wants " +
                         c10::str(t.sizes()));
  }
  if (weights.size() != fresh.size()) fail(c.source, "init_from: the checkpoint holds tensors the model config does not have");
  std::cerr << "[pretrain] starting from " << c.init_from << " step " << state.value("step", int64_t{0}) << std::endl;
  return weights;
}

nlohmann::json evaluate_pretrained(const LlamaModel& model, const PretrainConfig& c, const PretrainData& data, bool full,
                                   const RulerTrainingSampler* ruler) {
  torch::NoGradGuard no_grad;
  TaskGenerator gen(*data.tokenizer, data.heldout, data.words, c.tasks);
  nlohmann::json out =
      heldout_perplexity(model, c, data, full ? c.eval_heldout_sequences : std::max<int64_t>(4, c.eval_heldout_sequences / 4));
  // Retrieval: exact match of the whole answer = every teacher-forced argmax right (which is
  // what greedy decoding of the answer produces).
  auto accuracy = [&](const std::string& task, int64_t length, int needles, int64_t samples) {
    int64_t right = 0;
    for (int64_t i = 0; i < samples; ++i) {
      auto rng = step_rng(c.seed ^ 0xe7a1, length * 16 + needles, i);
      TaskSample s = task == "chain" ? gen.chain(rng, length + 1) : gen.needle(rng, length + 1, needles);
      auto batch = make_batch({s});
      auto pred = training_logits(model, batch.inputs).argmax(-1)[0];
      bool ok = true;
      for (int64_t p : s.answer_positions) ok = ok && pred[p - 1].item<int64_t>() == s.tokens[p];
      right += ok;
    }
    return static_cast<double>(right) / samples;
  };
  const int64_t samples = full ? c.eval_retrieval_samples : std::max<int64_t>(8, c.eval_retrieval_samples / 4);
  // Induction diagnostic: how much of a repeated passage the model copies (per token and whole).
  {
    int64_t tokens_right = 0, tokens_total = 0, whole = 0;
    const int64_t len = c.eval_retrieval_lengths.empty() ? 256 : c.eval_retrieval_lengths.front();
    for (int64_t i = 0; i < samples; ++i) {
      auto rng = step_rng(c.seed ^ 0xc0b1, len, i);
      TaskSample s = gen.copy(rng, len + 1);
      auto pred = training_logits(model, make_batch({s}).inputs).argmax(-1)[0];
      int64_t right = 0;
      for (int64_t p : s.answer_positions) right += pred[p - 1].item<int64_t>() == s.tokens[p];
      tokens_right += right;
      tokens_total += static_cast<int64_t>(s.answer_positions.size());
      whole += right == static_cast<int64_t>(s.answer_positions.size());
    }
    out["copy"] = {{"length", len},
                   {"token_accuracy", static_cast<double>(tokens_right) / std::max<int64_t>(1, tokens_total)},
                   {"exact", static_cast<double>(whole) / samples}};
  }
  if (ruler) ruler_probe(model, c, *ruler, full, out);
  for (int64_t len : c.eval_retrieval_lengths) {
    if (!full && len > 1024) continue;
    out["retrieval"]["single_needle"][std::to_string(len)] = accuracy("needle", len, 1, samples);
    if (full) {
      out["retrieval"]["multi_needle_4"][std::to_string(len)] = accuracy("needle", len, 4, samples);
      out["retrieval"]["chain"][std::to_string(len)] = accuracy("chain", len, 0, samples);
    }
  }
  return out;
}

void export_pretrained(const PretrainConfig& c, const PretrainData& data,
                       const std::map<std::string, torch::Tensor>& weights, const nlohmann::json& eval,
                       const nlohmann::json& summary) {
  ModelConfig mc = c.model;
  mc.bos_token_ids = {*data.tokenizer->bos_id()};
  mc.eos_token_ids = {*data.tokenizer->eos_id()};
  save_model_folder(c.output_dir, mc, weights, torch::kFloat32);
  fs::copy_file(data.tokenizer_path, join_path(c.output_dir, "tokenizer.model"), fs::copy_options::overwrite_existing);
  write_text_atomic(join_path(c.output_dir, "training_summary.json"),
                    nlohmann::json{{"eval", eval}, {"training", summary}}.dump(2) + "\n");
  auto model = LlamaModel::from_tensors(mc, weights, torch::kCPU, torch::kFloat32, c.output_dir);
  auto samples = greedy_samples(*model, *data.tokenizer,
                                {"The meaning of the word", "A computer program is", "In the morning the old king",
                                 "Question: What is a river?\nAnswer:"},
                                48);
  write_text_atomic(join_path(c.output_dir, "README.md"), model_card_markdown(c, eval, summary, samples));
}

void export_latest_checkpoint(const PretrainConfig& c) {
  configure_threads(c.threads);
  PretrainData data = prepare_pretrain_data(c);
  nlohmann::json state;
  auto weights = load_latest_checkpoint(c.work_dir, &state);
  if (weights.empty()) fail(c.work_dir, "no checkpoint to export (run echokv-train pretrain first)");
  auto model = LlamaModel::from_tensors(c.model, weights, torch::kCPU, torch::kFloat32, c.work_dir);
  std::cerr << "[export] evaluating step " << state.value("step", int64_t{0}) << "..." << std::endl;
  TaskGenerator gen(*data.tokenizer, data.heldout, data.words, c.tasks);
  std::unique_ptr<RulerTrainingSampler> ruler;  // the probe uses generate/encode only, never the filler
  if (c.has_ruler) ruler = std::make_unique<RulerTrainingSampler>(*data.tokenizer, gen, c.ruler);
  auto eval = evaluate_pretrained(*model, c, data, /*full=*/true, ruler.get());
  export_pretrained(c, data, weights, eval,
                    {{"steps", state.value("step", int64_t{0})}, {"tokens_seen", state.value("tokens_seen", int64_t{0})},
                     {"trained_seconds", state.value("trained_seconds", 0.0)}, {"config", c.source},
                     {"parameters", model->parameter_count()}});
  std::cerr << "[export] wrote " << c.output_dir << ": " << eval.dump() << std::endl;
}

PretrainOutcome run_pretrain(const PretrainConfig& c, const PretrainRunOptions& run) {
  const RunLock lock(c.work_dir, "training");  // one trainer per work_dir
  const int threads = configure_threads(c.threads);
  torch::manual_seed(c.seed);
  nlohmann::json state;
  auto master = load_latest_checkpoint(c.work_dir, &state);
  const bool resumed = !master.empty();
  if (!resumed) adopt_init_run(c);
  PretrainData data = prepare_pretrain_data(c);
  TaskGenerator gen(*data.tokenizer, data.train, data.words, c.tasks);
  std::unique_ptr<RulerTrainingSampler> ruler;
  if (c.has_ruler) {
    ruler = std::make_unique<RulerTrainingSampler>(*data.tokenizer, gen, c.ruler);
    for (const auto& stage : c.curriculum)  // an unknown "ruler/<task>" fails here, not at its first draw
      for (const auto& [kind, _] : stage.mix)
        if (kind.rfind("ruler/", 0) == 0) (void)ruler->data().task(kind.substr(6));
  }
  // One sample of a mix kind: the project's tasks, or RULER's ("ruler", "ruler/<task>").
  auto make_sample = [&](const std::string& kind, std::mt19937_64& rng, int64_t length) {
    if (kind == "ruler") return ruler->make("", rng, length);
    if (kind.rfind("ruler/", 0) == 0) return ruler->make(kind.substr(6), rng, length);
    return gen.make(kind, rng, length);
  };
  const torch::ScalarType dtype = c.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;

  if (!resumed) master = c.init_from.empty() ? random_llama_tensors(c.model, c.seed, c.init_std) : load_init_weights(c);
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& [name, t] : master) {
    t = t.to(torch::kFloat32).contiguous();
    t.set_requires_grad(true);
    (t.dim() >= 2 ? decay : no_decay).push_back(t);
  }
  auto opts = torch::optim::AdamWOptions(c.lr).betas({c.beta1, c.beta2}).eps(1e-8);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts.weight_decay(c.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(opts.weight_decay(0.0)));
  std::vector<torch::Tensor> all_params(decay);
  all_params.insert(all_params.end(), no_decay.begin(), no_decay.end());
  torch::optim::AdamW optimizer(std::move(groups));
  int64_t step = 0;
  double trained_seconds = 0;
  int64_t tokens_seen = 0;
  if (resumed) {
    const std::string dir = join_path(checkpoints_dir(c.work_dir), read_text_file(join_path(checkpoints_dir(c.work_dir), "latest")));
    load_optimizer_state(optimizer, dir, state);
    step = state.at("step").get<int64_t>();
    trained_seconds = state.value("trained_seconds", 0.0);
    tokens_seen = state.value("tokens_seen", int64_t{0});
    std::cerr << "[pretrain] resumed at step " << step << " (" << tokens_seen << " tokens, "
              << format_duration(trained_seconds) << " trained)" << std::endl;
  }
  const std::string metrics_path = join_path(c.work_dir, "metrics.jsonl");
  if (resumed) drop_records_after_step(metrics_path, step);
  // Metrics lines are appended and synced one by one (a failed write is an error, not a gap).
  auto model = view_model(c, master, dtype);
  std::cerr << "[pretrain] " << c.name << ": " << model->parameter_count() << " parameters, " << threads
            << " threads, " << c.total_steps << " steps of " << c.tokens_per_step << " tokens" << std::endl;

  PretrainOutcome outcome;
  const double run_start = monotonic_seconds();
  int64_t steps_this_run = 0;
  double window_start = monotonic_seconds();
  int64_t window_tokens = 0;
  double window_loss = 0;
  int64_t window_steps = 0;
  auto checkpoint = [&](int64_t done) {
    state = {{"step", done}, {"tokens_seen", tokens_seen}, {"trained_seconds", trained_seconds}, {"config", c.source}};
    save_checkpoint(c.work_dir, done, master, optimizer, state);
  };

  while (step < c.total_steps) {
    const double step_start = monotonic_seconds();
    const CurriculumStage& stage = c.stage_at(step);
    const double lr = learning_rate(c, step);
    for (auto& g : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    // Micro-batches sized by the stage's longest length; each one made at its own length.
    const int64_t micro_steps = std::max<int64_t>(
        1, c.tokens_per_step / (std::max<int64_t>(1, c.micro_batch_tokens / stage.seq_len) * stage.seq_len));
    optimizer.zero_grad();
    double step_loss = 0;
    int64_t step_tokens = 0;
    for (int64_t m = 0; m < micro_steps; ++m) {
      const int64_t len = stage.lengths[static_cast<size_t>((step * micro_steps + m) % int64_t(stage.lengths.size()))];
      const int64_t micro_b = std::max<int64_t>(1, c.micro_batch_tokens / len);
      step_tokens += micro_b * len;
      auto rng = step_rng(c.seed, step, m);
      std::vector<TaskSample> samples;
      for (int64_t i = 0; i < micro_b; ++i) samples.push_back(make_sample(pick_kind(stage.mix, rng), rng, len + 1));
      auto batch = make_batch(samples);
      if (dtype != torch::kFloat32) model = view_model(c, master, dtype);
      auto loss = weighted_loss(training_logits(*model, batch.inputs), batch) / static_cast<double>(micro_steps);
      loss.backward();
      step_loss += loss.item<double>();
    }
    torch::nn::utils::clip_grad_norm_(all_params, c.grad_clip);  // one global norm over every weight
    optimizer.step();
    ++step;
    ++steps_this_run;
    tokens_seen += step_tokens;
    trained_seconds += monotonic_seconds() - step_start;
    window_tokens += step_tokens;
    window_loss += step_loss;
    ++window_steps;

    if (step % c.log_every == 0 || step == c.total_steps) {
      const double elapsed = monotonic_seconds() - window_start;
      const double tps = window_tokens / std::max(elapsed, 1e-9);
      const double eta = (c.total_steps - step) * c.tokens_per_step / std::max(tps, 1e-9);
      const double mean_loss = window_loss / window_steps;
      std::cerr << "[pretrain] step " << step << "/" << c.total_steps << " T=" << (stage.lengths.size() > 1 ? "mixed<=" : "") << stage.seq_len << " loss "
                << std::fixed << std::setprecision(4) << mean_loss << " lr " << std::scientific << std::setprecision(2)
                << lr << std::defaultfloat << " | " << static_cast<int64_t>(tps) << " tok/s | trained "
                << format_duration(trained_seconds) << " | ETA " << format_duration(eta)
                << (c.curriculum.back().seq_len > stage.seq_len ? " (at this length's rate; longer stages follow)" : "")
                << std::endl;
      nlohmann::json record{{"step", step}, {"loss", mean_loss}, {"lr", lr}, {"seq_len", stage.seq_len},
                            {"tokens_seen", tokens_seen}, {"tokens_per_s", tps}, {"trained_seconds", trained_seconds}};
      if (stage.lengths.size() > 1) record["seq_lens"] = stage.lengths;
      append_jsonl(metrics_path, record);
      window_start = monotonic_seconds();
      window_tokens = 0;
      window_loss = 0;
      window_steps = 0;
    }
    const bool stop_now = (run.max_steps_this_run > 0 && steps_this_run >= run.max_steps_this_run) ||
                          (run.max_seconds_this_run > 0 && monotonic_seconds() - run_start >= run.max_seconds_this_run);
    if (step % c.checkpoint_every == 0 || step == c.total_steps || stop_now) checkpoint(step);
    if (step % c.eval_every == 0 && step < c.total_steps) {
      const double t0 = monotonic_seconds();
      auto eval = evaluate_pretrained(*model, c, data, /*full=*/false, ruler.get());
      append_jsonl(metrics_path, {{"step", step}, {"eval", eval}, {"eval_seconds", monotonic_seconds() - t0}});
      std::cerr << "[eval] step " << step << ": " << eval.dump() << std::endl;
      window_start = monotonic_seconds();
    }
    if (stop_now) break;
  }
  outcome.step = step;
  outcome.finished = step >= c.total_steps;
  if (outcome.finished && run.export_when_done) {
    std::cerr << "[pretrain] final evaluation..." << std::endl;
    auto eval = evaluate_pretrained(*model, c, data, /*full=*/true, ruler.get());
    append_jsonl(metrics_path, {{"step", step}, {"eval", eval}, {"final", true}});
    std::map<std::string, torch::Tensor> weights;
    for (const auto& [name, t] : master) weights[name] = t.detach();
    export_pretrained(c, data, weights, eval,
                      {{"steps", step}, {"tokens_seen", tokens_seen}, {"trained_seconds", trained_seconds},
                       {"config", c.source}, {"parameters", model->parameter_count()}});
    outcome.last_eval = eval;
    std::cerr << "[pretrain] exported to " << c.output_dir << ": " << eval.dump() << std::endl;
  }
  return outcome;
}

}  // namespace echokv
