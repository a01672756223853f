// `echokv-bench echo-train`: EchoKV reconstructor training throughput (stage 1 and stage 2
// steps: teacher forward, losses, backward, AdamW) against a forward-only pass of the frozen
// base model over the same sequences, measured in one run.
#include <iostream>

#include <nlohmann/json.hpp>

#include "analysis/calibration.h"
#include "bench/machine.h"
#include "bench_commands.h"
#include "cache/cache_factory.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/runtime.h"
#include "train/echo_trainer.h"

namespace echokv {

void register_echo_train_bench(CLI::App& app, int& threads) {
  struct Opts {
    std::string config, out;
    int sequences = 4;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("echo-train", "EchoKV training step throughput vs forward-only base model");
  cmd->add_option("--config", o->config, "echokv-train echo YAML")->required();
  cmd->add_option("--sequences", o->sequences, "timed sequences per measurement")->capture_default_str();
  cmd->add_option("--out", o->out, "write the JSON here too (atomically)");
  cmd->callback([o, &threads]() {
    auto c = EchoTrainConfig::load(o->config);
    const int used = configure_threads(threads > 0 ? threads : c.threads);
    LoadOptions lo;
    lo.device = c.device;
    lo.dtype = c.dtype;
    auto model = LlamaModel::load(c.model, lo);
    CalibrationData data(c.data, c.model, *model);
    const int64_t n = std::min<int64_t>(o->sequences, data.size());
    std::vector<std::vector<int64_t>> seqs;
    int64_t tokens = 0;
    for (int64_t i = 0; i < n; ++i) {
      seqs.push_back(data.sequence(i));
      tokens += int64_t(seqs.back().size());
    }
    Reconstructor recon(echo_plan_for(c, model->config()), c.bias, c.init_seed, model->device());
    for (auto& p : recon.parameters()) p.requires_grad_(true);
    torch::optim::AdamW optimizer(recon.parameters(), torch::optim::AdamWOptions(c.stage1.lr));
    auto forward_only = [&] {
      torch::NoGradGuard ng;
      for (const auto& ids : seqs) {
        auto cache = make_full_cache(*model, int64_t(ids.size()));
        ForwardOptions fo;
        fo.last_only = true;
        model->forward(torch::tensor(ids).view({1, -1}).to(model->device()), *cache, fo);
      }
    };
    auto stage_steps = [&](int stage) {
      return [&, stage] {
        for (const auto& ids : seqs) echo_train_step(*model, recon, optimizer, stage, ids, c);
      };
    };
    auto timed = [&](const std::function<void()>& f) {
      f();  // warm-up
      const double t0 = monotonic_seconds();
      f();
      return double(tokens) / (monotonic_seconds() - t0);
    };
    const double fwd = timed(forward_only);
    const double s1 = timed(stage_steps(1));
    const double s2 = timed(stage_steps(2));
    nlohmann::json result = {{"bench", "echo-train"},
                             {"environment", bench_environment(torch::kCPU, torch::kFloat32, used)},
                             {"config", o->config},
                             {"model", c.model},
                             {"threads", used},
                             {"seq_len", c.data.seq_len},
                             {"sequences", n},
                             {"plan_ratio", recon.plan().ratio()},
                             {"reconstructor_parameters", recon.parameter_count()},
                             {"forward_only_tokens_per_second", fwd},
                             {"stage1_tokens_per_second", s1},
                             {"stage2_tokens_per_second", s2},
                             {"stage1_vs_forward", s1 / fwd},
                             {"stage2_vs_forward", s2 / fwd}};
    std::cout << result.dump(2) << std::endl;
    if (!o->out.empty()) write_text_atomic(o->out, result.dump(2) + "\n");
  });
}

}  // namespace echokv
