// `echokv-bench train-step`: tokens/s of a full pretraining step (task generation, forward,
// backward, clipping, AdamW) against a bare forward+backward of the same model on the same
// token count, measured in one run, at each requested sequence length.
#include <iostream>

#include <nlohmann/json.hpp>

#include "bench/machine.h"
#include "bench_commands.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/runtime.h"
#include "model/random_model.h"
#include "model/train_forward.h"
#include "train/pretrain_data.h"
#include "train/retrieval_tasks.h"

namespace echokv {

void register_train_step_bench(CLI::App& app, int& threads) {
  struct Opts {
    std::string config, out;
    std::vector<int64_t> lengths = {256, 1024};
    int reps = 3;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("train-step", "pretraining step throughput vs bare forward+backward");
  cmd->add_option("--config", o->config, "pretraining YAML (its corpus and tokenizer must be prepared)")->required();
  cmd->add_option("--lengths", o->lengths, "sequence lengths")->delimiter(',')->capture_default_str();
  cmd->add_option("--reps", o->reps, "timed repetitions per measurement")->capture_default_str();
  cmd->add_option("--out", o->out, "write the JSON here too (atomically)");
  cmd->callback([o, &threads]() {
    auto c = PretrainConfig::load(o->config);
    const int used = configure_threads(threads > 0 ? threads : c.threads);
    auto data = prepare_pretrain_data(c);
    TaskGenerator gen(*data.tokenizer, data.train, data.words, c.tasks);
    auto master = random_llama_tensors(c.model, 1, c.init_std);
    std::vector<torch::Tensor> params;
    for (auto& [n, t] : master) {
      t.set_requires_grad(true);
      params.push_back(t);
    }
    torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(c.lr));
    auto model = LlamaModel::from_tensors(c.model, master, torch::kCPU, torch::kFloat32, "<bench>");
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t t : o->lengths) {
      const int64_t micro_b = std::max<int64_t>(1, c.micro_batch_tokens / t);
      const int64_t micro_steps = std::max<int64_t>(1, c.tokens_per_step / (micro_b * t));
      const int64_t tokens = micro_b * micro_steps * t;
      auto gen_rng = at::detail::createCPUGenerator(3);
      auto bare = [&]() {
        for (int64_t m = 0; m < micro_steps; ++m) {
          auto ids = at::randint(0, c.model.vocab_size, {micro_b, t + 1}, gen_rng, torch::kInt64);
          auto logits = training_logits(*model, ids.narrow(1, 0, t));
          torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), ids.narrow(1, 1, t).reshape({-1}))
              .backward();
        }
        optimizer.zero_grad();
      };
      std::mt19937_64 rng(5);
      auto full_step = [&]() {
        for (int64_t m = 0; m < micro_steps; ++m) {
          std::vector<TaskSample> samples;
          for (int64_t i = 0; i < micro_b; ++i) samples.push_back(gen.make(i % 2 ? "retrieval" : "copy", rng, t + 1));
          auto ids = torch::empty({micro_b, t + 1}, torch::kInt64);
          auto w = torch::empty({micro_b, t}, torch::kFloat32);
          for (int64_t i = 0; i < micro_b; ++i) {
            std::memcpy(ids[i].data_ptr<int64_t>(), samples[i].tokens.data(), (t + 1) * sizeof(int64_t));
            std::memcpy(w[i].data_ptr<float>(), samples[i].weights.data() + 1, t * sizeof(float));
          }
          auto logits = training_logits(*model, ids.narrow(1, 0, t));
          auto ce = torch::nn::functional::cross_entropy(
              logits.reshape({-1, logits.size(-1)}), ids.narrow(1, 1, t).reshape({-1}),
              torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
          ((ce * w.reshape({-1})).sum() / w.sum() / static_cast<double>(micro_steps)).backward();
        }
        torch::nn::utils::clip_grad_norm_(params, c.grad_clip);
        optimizer.step();
        optimizer.zero_grad();
      };
      auto time_it = [&](const std::function<void()>& f) {
        f();  // warm-up
        double best = 1e30;
        for (int r = 0; r < o->reps; ++r) {
          const double t0 = monotonic_seconds();
          f();
          best = std::min(best, monotonic_seconds() - t0);
        }
        return tokens / best;
      };
      std::cerr << "measuring T=" << t << "..." << std::endl;
      const double bare_tps = time_it(bare);
      const double step_tps = time_it(full_step);
      rows.push_back({{"seq_len", t}, {"tokens_per_step", tokens}, {"forward_backward_tokens_per_s", bare_tps},
                      {"train_step_tokens_per_s", step_tps}, {"step_over_forward_backward", step_tps / bare_tps}});
    }
    nlohmann::json result = {{"environment", bench_environment(torch::kCPU, torch::kFloat32, used)}, {"config", o->config}, {"threads", used}, {"parameters", model->parameter_count()},
                             {"results", rows}};
    std::cout << result.dump(2) << std::endl;
    if (!o->out.empty()) write_text_atomic(o->out, result.dump(2) + "\n");
  });
}

}  // namespace echokv
