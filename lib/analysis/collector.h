// Runs the model over calibration sequences and accumulates KV statistics, resumably:
// <dir>/stats.safetensors and <dir>/collect_state.json are written atomically every
// `save_every_seconds` and at the end; a rerun with the same collection settings continues
// after the last saved sequence (a different setting starts over, with a message).
// Positions below `skip_first` (attention sinks, kept uncompressed by EchoKV) are left out.
#pragma once
#include <string>

#include "analysis/analyze_config.h"
#include "analysis/calibration.h"
#include "analysis/kv_statistics.h"
#include "model/llama.h"

namespace echokv {

struct CollectOptions {
  double save_every_seconds = 30;
  bool progress = true;
  int64_t max_sequences_this_run = -1;  // stop early (for tests of resume); -1 = all
};

struct CollectResult {
  KVStatistics stats;
  bool complete = false;
  int64_t sequences_done = 0;
  double seconds = 0;
};

CollectResult collect_kv_statistics(const AnalyzeConfig& config, LlamaModel& model, CalibrationData& data,
                                    const std::string& dir, const CollectOptions& options = {});

// The observer alone: feeds one forward's pre-RoPE K and V into `stats` (rows = tokens).
class KVStatisticsObserver : public LayerObserver {
 public:
  KVStatisticsObserver(KVStatistics& stats, int64_t skip_first) : stats_(stats), skip_first_(skip_first) {}
  void on_qkv(int layer, const torch::Tensor& q_pre_rope, const torch::Tensor& k_pre_rope, const torch::Tensor& v,
              const torch::Tensor& positions) override;

 private:
  KVStatistics& stats_;
  int64_t skip_first_;
};

}  // namespace echokv
