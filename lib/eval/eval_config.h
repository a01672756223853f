// An evaluation run: one model, a list of methods (KV caches), a list of benchmarks.
//   echokv-eval --config configs/eval/<name>.yaml
// Every key is checked (unknown keys are errors); relative paths are taken as given (from
// the working directory), like every other config of this project.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compress/kvzip_eviction.h"
#include "compress/low_rank_cache.h"
#include "compress/snapkv.h"
#include "compress/streaming_cache.h"
#include "compress/think.h"
#include "echo/echo_cache.h"
#include "eval/niah.h"

namespace echokv {

struct EvalMethod {
  std::string name;          // label in tables, e.g. "echo-0.5"
  std::string cache = "full";  // full | echo | low_rank | streaming | kvzip | snapkv | think | hybrid | echo_kvzip
  std::string echo_dir;      // trained reconstructors (cache: echo)
  EchoCacheOptions echo;
  LowRankOptions low_rank;   // cache: low_rank (ratio, group_heads)
  StreamingOptions streaming;  // cache: streaming (sink_tokens, window or ratio)
  KvzipOptions kvzip;          // cache: kvzip (ratio, level, storage, score_chunk, calibration); echo_kvzip (ratio, score_chunk)
  SnapKVOptions snapkv;        // cache: snapkv (ratio, obs_window, kernel)
  ThinKOptions think;          // cache: think (prune, or ratio = stored bytes; obs_window); hybrid (prune, obs_window)
  double think_ratio = 0;      // cache: think given as a stored ratio (prune derived per model)
};

struct RulerEvalConfig {
  std::string data_dir;
  std::vector<std::string> tasks;  // empty = all tasks that can run
  std::vector<int64_t> lengths;
  int64_t samples = 20;
  std::string squad_path, hotpotqa_path;
  // RULER's model template (template.py name) the prompts are wrapped in as text; "auto":
  // the one RULER uses for the model's chat format (base, meta-chat, meta-llama3).
  std::string model_template = "auto";
  bool per_sample_document_order = false;  // qa; default RULER's one order per document count
};

struct LongBenchEvalConfig {
  std::string data_dir;    // <dataset>.jsonl files in the official format
  std::string config_dir;  // dataset2prompt.json, dataset2maxlen.json
  std::vector<std::string> datasets;
  // Prompt budget in tokens. 0: model2maxlen.json's entry for model_name (LongBench's name of
  // the model, e.g. "llama2-7b-chat-4k"), else the model's max_position_embeddings minus the
  // datasets' largest generation length. The report says which.
  int64_t max_length = 0;
  std::string model_name;
  // auto: LongBench's own form for Llama 2 ("[INST]{prompt}[/INST]", pred.py's build_chat),
  // the HF chat template otherwise; longbench: pred.py's form (none for models it has none
  // for); hf: the HF chat template.
  std::string chat_form = "auto";
  int64_t samples = 0;        // 0 = all records
};

// The prompt budget a LongBench run uses and where it comes from.
struct LongBenchBudget {
  int64_t max_length = 0;
  std::string source;  // "config", "model2maxlen.json: <name>", "max_position_embeddings <n> - <gen>"
};
LongBenchBudget resolve_longbench_budget(const LongBenchEvalConfig& config, int64_t max_position_embeddings);

struct FidelityEvalConfig {
  std::string source = "jsonl";  // jsonl (field "text") | text | safetensors (token ids)
  std::string path;
  std::string tensor = "sampled_ids";  // safetensors: int64 [N, T]
  int64_t sequences = 8;
  int64_t seq_len = 1024;
  int64_t chunk = 64;  // prefill chunk: tokens of earlier chunks are seen through the method's cache
  // > 0: the first context_tokens tokens are a context every method prefills (and compresses,
  // for KVzip / SnapKV / ThinK) first; KL and top-1 are measured on the tokens after it.
  int64_t context_tokens = 0;
};

struct EvalConfig {
  std::string source;
  std::string model;
  std::string out_dir;
  std::string device = "cpu", dtype = "float32";
  int threads = 0;
  std::string chat_format = "auto";
  // Llama 3.1's HF template opens with a "Cutting Knowledge Date" system block; false drops
  // it (Llama 3.0 style). RULER prompts use RULER's own templates, which never have it.
  bool llama3_date_header = true;
  uint64_t seed = 42;
  int64_t prefill_chunk = 512;
  std::vector<EvalMethod> methods;
  std::optional<RulerEvalConfig> ruler;
  std::optional<NiahConfig> niah;
  std::optional<LongBenchEvalConfig> longbench;
  std::optional<FidelityEvalConfig> fidelity;

  static EvalConfig load(const std::string& path);
};

}  // namespace echokv
