#include "analysis/collector.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cache/cache_factory.h"
#include "core/files.h"
#include "core/progress.h"

namespace echokv {

namespace {
// [B, Hkv, T, D] -> [B*T', Hkv*D] rows for the positions kept.
torch::Tensor to_rows(const torch::Tensor& x, const torch::Tensor& keep) {
  auto rows = x.permute({0, 2, 1, 3});  // [B, T, Hkv, D]
  rows = rows.index_select(1, keep);
  return rows.reshape({-1, x.size(1) * x.size(3)});
}

}  // namespace

void KVStatisticsObserver::on_qkv(int layer, const torch::Tensor&, const torch::Tensor& k_pre_rope,
                                  const torch::Tensor& v, const torch::Tensor& positions) {
  auto keep = (positions >= skip_first_).nonzero().view({-1}).to(k_pre_rope.device());
  stats_.add(KVKind::Key, layer, to_rows(k_pre_rope, keep));
  stats_.add(KVKind::Value, layer, to_rows(v, keep));
}

CollectResult collect_kv_statistics(const AnalyzeConfig& config, LlamaModel& model, CalibrationData& data,
                                    const std::string& dir, const CollectOptions& options) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  const std::string stats_path = join_path(dir, "stats.safetensors");
  const std::string state_path = join_path(dir, "collect_state.json");
  const auto& mc = model.config();
  const std::string fingerprint = config.collection_fingerprint();

  CollectResult result;
  result.stats = KVStatistics(mc.num_hidden_layers, mc.kv_dim(), config.window, model.device());
  if (file_exists(state_path) && file_exists(stats_path)) {
    auto state = nlohmann::json::parse(read_text_file(state_path), nullptr, false);
    if (!state.is_discarded() && state.value("fingerprint", "") == fingerprint) {
      auto loaded = KVStatistics::load(stats_path);
      if (loaded.num_layers() == mc.num_hidden_layers && loaded.features() == mc.kv_dim()) {
        result.stats = std::move(loaded);
        result.sequences_done = state.value("sequences_done", int64_t(0));
        if (options.progress && result.sequences_done > 0)
          std::cerr << "[collect] resuming after " << result.sequences_done << " sequences" << std::endl;
      }
    } else if (options.progress) {
      std::cerr << "[collect] " << state_path << " is from different settings; starting over" << std::endl;
    }
  }

  auto save = [&](bool complete) {
    result.stats.save(stats_path);
    nlohmann::json state = {{"fingerprint", fingerprint},
                            {"sequences_done", result.sequences_done},
                            {"sequences", data.size()},
                            {"tokens", result.stats.count()},
                            {"complete", complete}};
    write_text_atomic(state_path, state.dump(2) + "\n");
  };

  torch::NoGradGuard no_grad;
  KVStatisticsObserver observer(result.stats, config.skip_first);
  const auto t0 = std::chrono::steady_clock::now();
  auto last_save = t0, last_report = t0;
  const int64_t start = result.sequences_done;
  int64_t tokens_this_run = 0;
  int64_t done_this_run = 0;
  while (result.sequences_done < data.size()) {
    if (options.max_sequences_this_run >= 0 && done_this_run >= options.max_sequences_this_run) break;
    const auto ids = data.sequence(result.sequences_done);
    auto cache = make_full_cache(model, int64_t(ids.size()));
    const int64_t chunk = config.calibration.chunk;
    for (int64_t s = 0; s < int64_t(ids.size()); s += chunk) {
      const int64_t len = std::min<int64_t>(chunk, int64_t(ids.size()) - s);
      auto piece = torch::tensor(std::vector<int64_t>(ids.begin() + s, ids.begin() + s + len), torch::kInt64)
                       .view({1, len})
                       .to(model.device());
      ForwardOptions fo;
      fo.last_only = true;
      fo.observer = &observer;
      model.forward(piece, *cache, fo);
    }
    ++result.sequences_done;
    ++done_this_run;
    tokens_this_run += int64_t(ids.size());
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - t0).count();
    const bool tty = isatty(2);
    const bool report_line = tty || result.sequences_done == data.size() ||
                             std::chrono::duration<double>(now - last_report).count() >= 10.0;
    if (options.progress && report_line) {
      last_report = now;
      const double rate = tokens_this_run / std::max(elapsed, 1e-9);
      const double eta = elapsed / double(result.sequences_done - start) * double(data.size() - result.sequences_done);
      std::fprintf(stderr, "%s[collect] sequence %lld/%lld | %lld tokens | %.0f tok/s | ETA %s%s", tty ? "\r" : "",
                   (long long)result.sequences_done, (long long)data.size(), (long long)result.stats.count(), rate,
                   format_duration(eta).c_str(), tty ? "   " : "\n");
    }
    if (std::chrono::duration<double>(now - last_save).count() >= options.save_every_seconds) {
      save(false);
      last_save = now;
    }
  }
  if (options.progress && isatty(2)) std::fprintf(stderr, "\n");
  result.complete = result.sequences_done >= data.size();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  save(result.complete);
  return result;
}

}  // namespace echokv
