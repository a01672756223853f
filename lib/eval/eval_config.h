// An evaluation run: one model, a list of methods (KV caches), a list of benchmarks.
//   echokv-eval --config configs/eval/<name>.yaml
// Every key is checked (unknown keys are errors; a method's keys by the method itself); relative paths are taken as given (from
// the working directory), like every other config of this project.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <memory>

#include "eval/niah.h"
#include "methods/method.h"

namespace echokv {

// A method entry: its label and the registry's method (lib/methods/), options parsed and
// checked. `ratio: [0.7, 0.5]` (or compression_ratio) in an entry expands to one entry per
// value, named "<name>-<value>".
struct EvalMethod {
  std::string name;            // label in tables, e.g. "echo-0.5"
  std::string cache = "full";  // the registry kind (for display; behaviour lives in `method`)
  std::shared_ptr<Method> method;
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

// Changes to a config from the command line, applied to its YAML before it is read (so every
// key is still checked):  echokv-eval --config X --method NAME --ratio R --set key=value --fraction F
struct EvalOverrides {
  std::vector<std::string> methods;   // keep only these entries (names after sweep expansion)
  std::optional<double> ratio;        // every kept entry: ratio = R (its other size knobs dropped), named "<name>@<R>"
  std::vector<std::string> settings;  // "a.b=value" from the config's root; "methods.key=value" on every kept entry
  std::optional<double> fraction;     // the same as --set fraction=F
  bool empty() const { return methods.empty() && !ratio && settings.empty() && !fraction; }
};

struct EvalConfig {
  std::string source;
  std::string yaml;  // the config as run (the file, or the file with its overrides applied)
  // The first ceil(fraction x n) samples of each benchmark group (RULER task x length, NIAH
  // cell, LongBench dataset, fidelity sequences), like kvpress's fraction: quick runs.
  double fraction = 1.0;
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

  static EvalConfig load(const std::string& path, const EvalOverrides& overrides = {});
};

}  // namespace echokv
