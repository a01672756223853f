// `echokv-analyze` experiment config (YAML, strict: unknown keys are errors). Relative
// paths are taken from the working directory (run from the repository root).
//   model: ../shared/fixtures/reference/stories260K
//   device: cpu            dtype: float32           threads: 0
//   calibration:
//     source: samples      # samples (the model's own, from BOS) | ids (safetensors) | text
//     sequences: 32        seq_len: 256            seed: 42
//     temperature: 1.0     # samples
//     ids_file: x.safetensors  ids_tensor: sampled_ids   # ids: [N, T] or [T] int
//     files: [a.txt, b.jsonl]  tokenizer: <path>          # text: plain text or JSONL "text"
//     chunk: 512           # prefill chunk while collecting
//   analysis:
//     window: 3            # cross-layer statistics reach back this many layers
//     ridge: 1.0e-6        # relative ridge of the least-squares fits
//     skip_first: 4        # attention-sink positions left out of the statistics
//   plans:
//     ratios: [0.7, 0.5, 0.3]   primary_ratio: 0.5   paper_granularity: 0 (= head_dim / 2)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace echokv {

struct CalibrationConfig {
  std::string source = "samples";
  int64_t sequences = 32;
  int64_t seq_len = 256;
  uint64_t seed = 42;
  double temperature = 1.0;
  std::string ids_file, ids_tensor = "input_ids";
  std::vector<std::string> files;
  std::string tokenizer;
  int64_t chunk = 512;
};

class ConfigNode;
// Reads the calibration keys of `node` (the caller finishes the node) and validates them;
// `section` names it in errors ("calibration", "data").
void read_calibration(ConfigNode& node, CalibrationConfig& config, const std::string& section);

struct AnalyzeConfig {
  std::string source;  // the YAML file
  std::string model;
  std::string device = "cpu", dtype = "float32";
  int threads = 0;
  CalibrationConfig calibration;
  int window = 3;
  double ridge = 1e-6;
  int64_t skip_first = 4;
  std::vector<double> ratios = {0.7, 0.5, 0.3};
  double primary_ratio = 0.5;
  int64_t paper_granularity = 0;

  static AnalyzeConfig load(const std::string& path);
  // A stable text of everything that determines the statistics (for resume checks).
  std::string collection_fingerprint() const;
};

}  // namespace echokv
