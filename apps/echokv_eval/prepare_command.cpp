#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/clock.h"
#include "core/error.h"
#include "core/files.h"
#include "echokv_eval/commands.h"
#include "eval/ruler_tasks.h"
#include "eval/ruler_template.h"
#include "tokenizer/tokenizer.h"

namespace echokv {

// RULER data the way prepare.py writes it, with this harness's generator: one JSONL file of
// samples (index, input, outputs, length, answer_prefix, ...) per task and length.
Command add_prepare_command(CLI::App& app) {
  struct Opts {
    std::string data_dir, tokenizer, out_dir, model_template = "base", squad, hotpot;
    std::vector<std::string> tasks;
    std::vector<int64_t> lengths;
    int64_t samples = 10;
    uint64_t seed = 42;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("prepare", "write RULER samples (prepare.py's layout: <out>/<length>/<task>.jsonl)");
  cmd->add_option("--ruler-data", o->data_dir, "RULER data folder (synthetic.yaml, templates.json, essays, word lists)")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer file or model folder")->required();
  cmd->add_option("--out", o->out_dir, "output folder")->required();
  cmd->add_option("--tasks", o->tasks, "tasks (default: every task that can run)");
  cmd->add_option("--lengths", o->lengths, "target lengths in tokens")->required();
  cmd->add_option("--samples", o->samples, "samples per task and length");
  cmd->add_option("--seed", o->seed, "random seed");
  cmd->add_option("--template", o->model_template, "RULER model template (base, meta-chat, meta-llama3, ...)");
  cmd->add_option("--squad", o->squad, "SQuAD v2 dev JSON (qa_1)");
  cmd->add_option("--hotpotqa", o->hotpot, "HotpotQA dev distractor JSON (qa_2)");
  return {cmd, [o]() {
    if (o->samples <= 0) throw Error("--samples must be positive");
    const auto tok = load_tokenizer(o->tokenizer);
    RulerData data(o->data_dir, o->squad, o->hotpot);
    RulerGenerateOptions options;
    options.model_template = o->model_template;
    (void)ruler_model_template(o->model_template);
    const RulerTokenCounter count = [&](const std::string& text) {
      return static_cast<int64_t>(encode_with_control_text(*tok, text).size());
    };
    const auto tasks = o->tasks.empty() ? data.task_names() : o->tasks;
    nlohmann::json summary = nlohmann::json::array();
    int failed = 0;
    for (int64_t len : o->lengths)
      for (const auto& task : tasks) {
        if (const auto why = data.unavailable_reason(task); !why.empty()) {
          std::fprintf(stderr, "[prepare] skipping %s: %s\n", task.c_str(), why.c_str());
          continue;
        }
        const double t0 = monotonic_seconds();
        std::vector<RulerSample> samples;
        try {
          samples = data.generate(task, len, o->samples, o->seed, count, options);
        } catch (const Error& e) {  // e.g. cwe beyond the word lists: say so, go on with the rest
          std::fprintf(stderr, "[prepare] %s at %lld: %s\n", task.c_str(), (long long)len, e.what());
          summary.push_back({{"task", task}, {"max_length", len}, {"error", e.what()}});
          ++failed;
          continue;
        }
        std::string text;
        int64_t lo = len, hi = 0;
        for (const auto& s : samples) {
          text += s.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
          lo = std::min(lo, s.length);
          hi = std::max(hi, s.length);
        }
        const std::string dir = join_path(o->out_dir, std::to_string(len));
        std::filesystem::create_directories(dir);
        const std::string path = join_path(dir, task + ".jsonl");
        write_text_atomic(path, text);
        summary.push_back({{"task", task}, {"max_length", len}, {"samples", samples.size()}, {"min_length", lo},
                           {"max_length_reached", hi}, {"seconds", monotonic_seconds() - t0}, {"file", path}});
        std::fprintf(stderr, "[prepare] %s at %lld: lengths %lld..%lld (%.1f s) -> %s\n", task.c_str(), (long long)len,
                     (long long)lo, (long long)hi, monotonic_seconds() - t0, path.c_str());
      }
    std::cout << summary.dump(2) << "\n";
    return failed ? 1 : 0;
  }};
}

}  // namespace echokv
