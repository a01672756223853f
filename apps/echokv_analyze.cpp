// echokv-analyze: measure KV head similarity and choose what EchoKV keeps.
//   echokv-analyze run  --config configs/analysis/stories260k.yaml --out DIR   (collect + report; resumable)
//   echokv-analyze plan --stats DIR/stats.safetensors --model MODEL --ratio 0.4 [--strategy paper] --out plan.json
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>

#include "cli/parse_errors.h"
#include "core/run_lock.h"
#include "analysis/analysis_report.h"
#include "analysis/calibration.h"
#include "analysis/collector.h"
#include "analysis/plan_search.h"
#include "cli/common.h"
#include "core/error.h"
#include "core/files.h"
#include "core/runtime.h"
#include "model/llama.h"

int main(int argc, char** argv) {
  echokv::prepare_process(argc, argv);
  return echokv::run_app("echokv-analyze", [&]() -> int {
    CLI::App app{"EchoKV-cpp head-similarity analysis"};
    app.set_version_flag("--version", [] { return echokv::version_text("echokv-analyze"); });
    app.require_subcommand(1);
    std::string config_path, out_dir, model_override;
    echokv::RuntimeFlags rt;
    auto* run = app.add_subcommand("run", "collect KV statistics on calibration data, write report, metrics and plans");
    run->add_option("--config", config_path, "YAML config (configs/analysis/*.yaml)")->required();
    run->add_option("--out", out_dir, "output folder (resumes a collection found there)")->required();
    run->add_option("--model", model_override, "model folder (overrides the config's)");
    run->add_option("--threads", rt.threads, "CPU threads (0 = config, ECHOKV_THREADS or all cores)");
    run->add_option("--device", rt.device, "cpu | cuda | cuda:N (overrides the config)");
    run->add_option("--dtype", rt.dtype, "float32 | bfloat16 | float16 (overrides the config)");

    std::string stats_path, model_dir, strategy = "similarity", plan_out;
    double ratio = 0.5, ridge = 1e-6;
    int64_t granularity = 0;
    auto* plan = app.add_subcommand("plan", "make a plan for any ratio from saved statistics");
    plan->add_option("--stats", stats_path, "stats.safetensors from a run")->required();
    plan->add_option("--model", model_dir, "model folder (for its shape)")->required();
    plan->add_option("--ratio", ratio, "target stored-byte ratio in (0, 1]")->required();
    plan->add_option("--strategy", strategy, "similarity | paper")->capture_default_str();
    plan->add_option("--ridge", ridge, "relative ridge of the fits")->capture_default_str();
    plan->add_option("--granularity", granularity, "paper: D_local multiple (0 = head_dim / 2)");
    plan->add_option("--out", plan_out, "plan JSON to write")->required();
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return echokv::report_parse_error("echokv-analyze", app, e);
    }

    if (plan->parsed()) {
      if (!(ratio > 0 && ratio <= 1))
        throw echokv::Error("--ratio must be in (0, 1] (the fraction of bytes kept), got " + std::to_string(ratio));
      if (strategy != "similarity" && strategy != "paper")
        throw echokv::Error("--strategy must be similarity or paper (got '" + strategy + "')");
      auto mc = echokv::ModelConfig::load(model_dir);
      auto stats = echokv::KVStatistics::load(stats_path);
      const auto shape = echokv::PlanShape::of(mc);
      if (stats.num_layers() != shape.num_layers || stats.features() != shape.features())
        echokv::fail(stats_path, "statistics are for another model shape than " + model_dir);
      echokv::HeadPlan p;
      if (strategy == "paper") {
        p = echokv::HeadPlan::paper_for_ratio(shape, ratio, granularity > 0 ? granularity : std::max<int64_t>(1, mc.head_dim / 2));
      } else {
        echokv::SimilaritySearchOptions so;
        so.target_ratio = ratio;
        so.ridge = ridge;
        p = echokv::similarity_plan(stats, shape, so);
      }
      auto pred = echokv::predict_plan(stats, p, ridge);
      p.save(plan_out);
      std::cout << "plan " << plan_out << ": " << p.strategy << ", stored " << p.stored_features() << " of "
                << p.full_features() << " features per token = ratio " << p.ratio() << " (target " << ratio
                << "), predicted R^2 " << pred.score << " (K " << pred.k_score << ", V " << pred.v_score << ")"
                << std::endl;
      return 0;
    }

    auto config = echokv::AnalyzeConfig::load(config_path);
    if (!model_override.empty()) config.model = model_override;
    if (run->count("--device")) config.device = rt.device;
    if (run->count("--dtype")) config.dtype = rt.dtype;
    const int threads = echokv::configure_threads(rt.threads > 0 ? rt.threads : config.threads);
    echokv::LoadOptions lo;
    lo.device = config.device;
    lo.dtype = config.dtype;
    const echokv::RunLock lock(out_dir, "analysis");  // one run per output folder
    auto model = echokv::LlamaModel::load(config.model, lo);
    std::cerr << "[analyze] " << config.model << " on " << config.device << " (" << config.dtype << "), " << threads
              << " threads" << std::endl;
    echokv::CalibrationData data(config.calibration, config.model, *model);
    auto collected = echokv::collect_kv_statistics(config, *model, data, out_dir);
    echokv::AnalysisContext ctx;
    ctx.model_path = config.model;
    ctx.calibration = data.describe();
    ctx.collect_seconds = collected.seconds;
    std::ostringstream cmd;
    cmd << "echokv-analyze run --config " << config_path << " --out " << out_dir;
    ctx.command = cmd.str();
    echokv::write_analysis_outputs(config, model->config(), collected.stats, ctx, out_dir);
    return 0;
  });
}
