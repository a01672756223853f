#include "train/echo_trainer.h"

#include "core/run_lock.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <random>
#include <sstream>

#include "analysis/calibration.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/files.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "io/jsonl.h"
#include "io/model_fingerprint.h"
#include "train/echo_objectives.h"
#include "train/training_checkpoint.h"

namespace echokv {

namespace {
namespace fs = std::filesystem;

double cosine_lr(double lr, int64_t step, int64_t total) {
  if (total <= 1) return lr;
  return 0.5 * lr * (1.0 + std::cos(M_PI * double(step) / double(total)));
}
}  // namespace

HeadPlan echo_plan_for(const EchoTrainConfig& c, const ModelConfig& mc) {
  const PlanShape shape = PlanShape::of(mc);
  if (!c.plan_file.empty()) {
    auto plan = HeadPlan::load(c.plan_file);
    if (plan.shape != shape)
      fail(c.plan_file, "plan is for " + plan.shape.text() + ", the model " + c.model + " has " + shape.text());
    return plan;
  }
  return HeadPlan::paper_for_ratio(shape, c.plan_ratio,
                                   c.plan_granularity > 0 ? c.plan_granularity : std::max<int64_t>(1, mc.head_dim / 2));
}

double echo_train_step(LlamaModel& model, const Reconstructor& recon, torch::optim::Optimizer& optimizer, int stage,
                       const std::vector<int64_t>& ids, const EchoTrainConfig& c) {
  auto teacher = run_teacher(model, ids);
  optimizer.zero_grad();
  const auto rebuild = trained_rebuild(recon);
  double loss_value = 0;
  for (int l = 0; l < int(model.config().num_hidden_layers); ++l) {
    // One layer's graph at a time: backward right away, gradients accumulate.
    torch::Tensor loss;
    if (stage == 1) {
      for (KVKind kind : {KVKind::Key, KVKind::Value}) {
        if (!recon.compressed(l, kind)) continue;
        auto term = kv_mse(recon, rebuild, l, kind, teacher, c.sink_tokens);
        loss = loss.defined() ? loss + term : term;
      }
    } else if (recon.compressed(l, KVKind::Key) || recon.compressed(l, KVKind::Value)) {
      loss = output_mse(model, recon, rebuild, l, teacher, c.sink_tokens, c.recent_tokens);
    }
    if (!loss.defined()) continue;
    loss.backward();
    loss_value += loss.item<double>();
  }
  optimizer.step();
  return loss_value;
}

namespace {

// Per-layer validation: KV-MSE for K and V, O-MSE; means over validation sequences.
nlohmann::json validate(LlamaModel& model, const Reconstructor& r, const RebuildFn& rebuild, CalibrationData& data,
                        int64_t first, int64_t count, const EchoTrainConfig& c) {
  torch::NoGradGuard ng;
  const int L = int(model.config().num_hidden_layers);
  std::vector<double> k_mse(L, 0), v_mse(L, 0), o_mse(L, 0), k_var(L, 0), v_var(L, 0);
  for (int64_t s = 0; s < count; ++s) {
    auto t = run_teacher(model, data.sequence(first + s));
    for (int l = 0; l < L; ++l) {
      bool any = false;
      for (KVKind kind : {KVKind::Key, KVKind::Value}) {
        if (!r.compressed(l, kind)) continue;
        any = true;
        auto& acc = kind == KVKind::Key ? k_mse : v_mse;
        acc[l] += kv_mse(r, rebuild, l, kind, t, c.sink_tokens).item<double>() / double(count);
        auto target = t.features(kind)[l].index_select(-1, r.dropped_index(l, kind)).slice(0, c.sink_tokens);
        (kind == KVKind::Key ? k_var : v_var)[l] += target.var(0, false).mean().item<double>() / double(count);
      }
      if (any) o_mse[l] += output_mse(model, r, rebuild, l, t, c.sink_tokens, c.recent_tokens).item<double>() / double(count);
    }
  }
  // Which layers a metric covers: K metrics where keys are rebuilt, V where values are, the
  // attention output where either is.
  std::vector<bool> key_layers(L), value_layers(L), any_layers(L);
  for (int l = 0; l < L; ++l) {
    key_layers[l] = r.compressed(l, KVKind::Key);
    value_layers[l] = r.compressed(l, KVKind::Value);
    any_layers[l] = key_layers[l] || value_layers[l];
  }
  auto per_layer = [&](const std::vector<double>& v, const std::vector<bool>& covered) {
    nlohmann::json out = nlohmann::json::array();
    for (int l = 0; l < L; ++l) out.push_back(covered[l] ? nlohmann::json(v[l]) : nlohmann::json(nullptr));
    return out;
  };
  auto mean_of = [&](const std::vector<double>& v, const std::vector<bool>& covered) {
    double s = 0;
    int n = 0;
    for (int l = 0; l < L; ++l)
      if (covered[l]) s += v[l], ++n;
    return n ? s / n : 0.0;
  };
  return {{"k_mse", per_layer(k_mse, key_layers)},
          {"v_mse", per_layer(v_mse, value_layers)},
          {"o_mse", per_layer(o_mse, any_layers)},
          {"k_variance", per_layer(k_var, key_layers)},
          {"v_variance", per_layer(v_var, value_layers)},
          {"mean_k_mse", mean_of(k_mse, key_layers)},
          {"mean_v_mse", mean_of(v_mse, value_layers)},
          {"mean_o_mse", mean_of(o_mse, any_layers)},
          {"sequences", count}};
}

std::string summary_markdown(const EchoTrainConfig& c, const Reconstructor& r, const nlohmann::json& v,
                             double seconds) {
  std::ostringstream md;
  const auto& plan = r.plan();
  md << "# EchoKV reconstructors: " << c.model << "\n\n";
  md << "- Plan: " << plan.strategy << " (" << plan.notes << "), stored ratio " << plan.ratio() << "\n";
  md << "- Reconstructors: " << r.parameter_count() << " parameters, bias " << (r.has_bias() ? "on" : "off") << "\n";
  md << "- Stages: " << c.stage1.steps << " steps KV-MSE (lr " << c.stage1.lr << "), " << c.stage2.steps
     << " steps O-MSE (lr " << c.stage2.lr << "), AdamW, cosine decay, no warmup, batch 1 x " << c.data.seq_len
     << " tokens; exact sink " << c.sink_tokens << " + recent " << c.recent_tokens << " in the O-MSE attention\n";
  md << "- Config: `" << c.source << "`; training time " << format_duration(seconds) << " (this run)\n\n";
  md << "## Validation (mean over compressed layers, " << v["baseline_zeros"]["sequences"] << " held-out sequences)\n\n";
  md << "| reconstruction | K MSE | V MSE | O-MSE |\n|---|---|---|---|\n";
  for (const auto& [name, key] : std::vector<std::pair<std::string, std::string>>{
           {"none (zeros)", "baseline_zeros"}, {"copy of the global layer", "baseline_copy"},
           {std::string("initial (") + c.init + " init)", "initial"}, {"after stage 1 (KV-MSE)", "stage1"}, {"after stage 2 (O-MSE)", "stage2"}}) {
    if (!v.contains(key)) continue;
    md << "| " << name << " | " << v[key]["mean_k_mse"].get<double>() << " | " << v[key]["mean_v_mse"].get<double>()
       << " | " << v[key]["mean_o_mse"].get<double>() << " |\n";
  }
  md << "\n## Per layer\n\n| layer | K MSE s1 | K MSE s2 | V MSE s1 | V MSE s2 | O-MSE zeros | O-MSE copy | O-MSE s1 | O-MSE s2 |\n"
        "|---|---|---|---|---|---|---|---|---|\n";
  auto cell = [&](const char* key, const char* field, int l) -> std::string {
    if (!v.contains(key) || v[key][field][l].is_null()) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v[key][field][l].get<double>());
    return buf;
  };
  for (int l = 0; l < plan.shape.num_layers; ++l)
    md << "| " << l << " | " << cell("stage1", "k_mse", l) << " | " << cell("stage2", "k_mse", l) << " | "
       << cell("stage1", "v_mse", l) << " | " << cell("stage2", "v_mse", l) << " | " << cell("baseline_zeros", "o_mse", l)
       << " | " << cell("baseline_copy", "o_mse", l) << " | " << cell("stage1", "o_mse", l) << " | "
       << cell("stage2", "o_mse", l) << " |\n";
  return md.str();
}
}  // namespace

EchoRunOutcome run_echo_training(const EchoTrainConfig& c, const EchoRunOptions& options) {
  configure_threads(c.threads);
  LoadOptions lo;
  lo.device = c.device;
  lo.dtype = c.dtype;
  auto model = LlamaModel::load(c.model, lo);
  const auto& mc = model->config();
  const HeadPlan plan = echo_plan_for(c, mc);
  if (plan.is_full()) fail(c.source, "the plan keeps every layer whole: nothing to train");

  fs::create_directories(c.output_dir);
  const RunLock lock(c.output_dir, "EchoKV training");  // one trainer per output folder
  const std::string ckpt_root = join_path(c.output_dir, "checkpoints");
  const std::string metrics_path = join_path(c.output_dir, "metrics.jsonl");
  const std::string validation_path = join_path(c.output_dir, "validation.json");

  CalibrationData data(c.data, c.model, *model, c.validation_sequences);
  const int64_t n_train = c.data.sequences, n_val = c.validation_sequences;

  Reconstructor recon(plan, c.bias, c.init_seed, model->device());
  for (auto& p : recon.parameters()) p.requires_grad_(true);

  EchoRunOutcome outcome;
  nlohmann::json validation = file_exists(validation_path) ? nlohmann::json::parse(read_text_file(validation_path))
                                                           : nlohmann::json::object();
  int stage = 1;
  int64_t step = 0;
  double trained_seconds = 0;
  const std::string latest = latest_training_checkpoint(ckpt_root);
  nlohmann::json state;
  std::map<std::string, torch::Tensor> resume_weights;
  if (!latest.empty()) {
    resume_weights = load_training_checkpoint(latest, &state);
    recon.load_tensors(resume_weights, join_path(latest, "weights.safetensors"));
    stage = state.at("stage").get<int>();
    step = state.at("step").get<int64_t>();
    trained_seconds = state.value("trained_seconds", 0.0);
    if (options.progress) std::cerr << "[echo] resuming at stage " << stage << " step " << step << std::endl;
  }
  if (latest.empty() && c.init == "least_squares") {
    if (options.progress)
      std::cerr << "[echo] least-squares initialisation from " << std::min(c.init_sequences, n_train) << " sequences"
                << std::endl;
    std::vector<TeacherSequence> teachers;
    for (int64_t i = 0; i < std::min(c.init_sequences, n_train); ++i) teachers.push_back(run_teacher(*model, data.sequence(i)));
    least_squares_init(recon, teachers, c.sink_tokens, c.init_ridge);
  }
  auto save_validation = [&] { write_text_atomic(validation_path, validation.dump(2) + "\n"); };
  if (!validation.contains("baseline_zeros")) {
    if (options.progress) std::cerr << "[echo] validating baselines on " << n_val << " held-out sequences" << std::endl;
    validation["baseline_zeros"] = validate(*model, recon, zeros_rebuild(recon), data, n_train, n_val, c);
    validation["baseline_copy"] = validate(*model, recon, copy_global_rebuild(recon), data, n_train, n_val, c);
    validation["initial"] = validate(*model, recon, trained_rebuild(recon), data, n_train, n_val, c);
    save_validation();
  }

  int64_t steps_this_run = 0;
  bool stopped = false;
  const double run_start = monotonic_seconds();
  while (stage <= 2 && !stopped) {
    const auto& sc = c.stage(stage);
    torch::optim::AdamW optimizer(recon.parameters(), torch::optim::AdamWOptions(sc.lr)
                                                          .betas({c.beta1, c.beta2})
                                                          .eps(c.eps)
                                                          .weight_decay(c.weight_decay));
    if (step > 0 && !latest.empty() && state.at("stage").get<int>() == stage)
      load_optimizer_state(optimizer, latest, state);
    // Data order: a seeded permutation per stage and epoch.
    auto sequence_for = [&](int64_t s) {
      const int64_t epoch = s / n_train;
      std::vector<int64_t> order(n_train);
      std::iota(order.begin(), order.end(), 0);
      std::mt19937_64 rng(c.seed * 1000003ULL + uint64_t(stage) * 7919ULL + uint64_t(epoch));
      std::shuffle(order.begin(), order.end(), rng);
      return order[s % n_train];
    };
    auto checkpoint = [&](int64_t at) {
      nlohmann::json st = {{"stage", stage}, {"step", at}, {"trained_seconds", trained_seconds}, {"config", c.source}};
      save_training_checkpoint(ckpt_root, "stage" + std::to_string(stage) + "-step-" + std::to_string(at),
                               recon.named_tensors(), optimizer, st);
    };
    const double stage_start = monotonic_seconds();
    const int64_t first_step = step;
    double loss_window = 0;
    int64_t window_steps = 0, tokens = 0;
    while (step < sc.steps) {
      if (options.max_steps_this_run >= 0 && steps_this_run >= options.max_steps_this_run) {
        stopped = true;
        break;
      }
      const double t0 = monotonic_seconds();
      for (auto& group : optimizer.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(cosine_lr(sc.lr, step, sc.steps));
      const auto ids = data.sequence(sequence_for(step));
      const double loss_value = echo_train_step(*model, recon, optimizer, stage, ids, c);
      ++step;
      ++steps_this_run;
      tokens += int64_t(ids.size());
      trained_seconds += (monotonic_seconds() - t0);
      loss_window += loss_value;
      ++window_steps;
      if (step % c.log_every == 0 || step == sc.steps) {
        const double elapsed = (monotonic_seconds() - stage_start);
        const double rate = double(tokens) / std::max(elapsed, 1e-9);
        const double eta = elapsed / double(step - first_step) *
                           double((sc.steps - step) + (stage == 1 ? c.stage2.steps : 0));
        append_jsonl(metrics_path, {{"stage", stage}, {"step", step}, {"loss", loss_window / window_steps},
                                    {"lr", cosine_lr(sc.lr, step - 1, sc.steps)}, {"tokens_per_second", rate}});
        if (options.progress)
          std::fprintf(stderr, "[echo] stage %d step %lld/%lld loss %.5g | %.0f tok/s | ETA %s\n", stage,
                       (long long)step, (long long)sc.steps, loss_window / window_steps, rate,
                       format_duration(eta).c_str());
        loss_window = 0;
        window_steps = 0;
      }
      if (step % c.checkpoint_every == 0 && step < sc.steps) checkpoint(step);
    }
    if (stopped) {
      checkpoint(step);
      break;
    }
    // Stage done: validate, checkpoint at the start of the next stage.
    if (options.progress) std::cerr << "[echo] stage " << stage << " done; validating" << std::endl;
    validation["stage" + std::to_string(stage)] = validate(*model, recon, trained_rebuild(recon), data, n_train, n_val, c);
    save_validation();
    append_jsonl(metrics_path, {{"stage", stage}, {"validation", validation["stage" + std::to_string(stage)]}});
    ++stage;
    step = 0;
    // Checkpoint the boundary: the start of stage 2, or "done" (a rerun then only rewrites
    // the outputs).
    torch::optim::AdamW fresh(recon.parameters(), torch::optim::AdamWOptions(c.stage2.lr));
    nlohmann::json st = {{"stage", stage}, {"step", 0}, {"trained_seconds", trained_seconds}, {"config", c.source}};
    save_training_checkpoint(ckpt_root, stage <= 2 ? "stage2-step-0" : "done", recon.named_tensors(), fresh, st);
  }
  outcome.stage = std::min(stage, 2);
  outcome.step = step;
  outcome.validation = validation;
  if (stage > 2) {
    outcome.finished = true;
    nlohmann::json info = {{"base_model", c.model},
                           {"base_model_fingerprint", model_fingerprint(c.model)},
                           {"config", c.source},
                           {"stage1_steps", c.stage1.steps},
                           {"stage2_steps", c.stage2.steps},
                           {"sink_tokens", c.sink_tokens},
                           {"recent_tokens", c.recent_tokens},
                           {"trained_seconds", trained_seconds},
                           {"validation", validation}};
    recon.save(c.output_dir, info);
    write_text_atomic(join_path(c.output_dir, "summary.md"), summary_markdown(c, recon, validation, trained_seconds));
    if (options.progress) std::cerr << "[echo] wrote " << c.output_dir << std::endl;
  }
  (void)run_start;
  return outcome;
}

}  // namespace echokv
