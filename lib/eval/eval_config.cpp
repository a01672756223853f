#include "eval/eval_config.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/files.h"
#include "core/yaml_config.h"

#include <nlohmann/json.hpp>

namespace echokv {

LongBenchBudget resolve_longbench_budget(const LongBenchEvalConfig& lc, int64_t max_position_embeddings) {
  if (lc.max_length > 0) return {lc.max_length, "config"};
  const std::string table_path = join_path(lc.config_dir, "model2maxlen.json");
  if (!lc.model_name.empty()) {
    nlohmann::json table;
    try {
      table = nlohmann::json::parse(read_text_file(table_path));
    } catch (const nlohmann::json::parse_error& e) {
      fail(table_path, std::string("malformed JSON: ") + e.what());
    }
    if (!table.contains(lc.model_name) || !table[lc.model_name].is_number_integer())
      fail(table_path, "no entry for model_name '" + lc.model_name + "' (give max_length, or leave model_name out to use the model's own length)");
    return {table[lc.model_name].get<int64_t>(), "model2maxlen.json: " + lc.model_name};
  }
  // The model's own window, less the longest generation any chosen dataset asks for.
  int64_t gen = 0;
  const std::string maxlen_path = join_path(lc.config_dir, "dataset2maxlen.json");
  nlohmann::json maxlen;
  try {
    maxlen = nlohmann::json::parse(read_text_file(maxlen_path));
  } catch (const nlohmann::json::parse_error& e) {
    fail(maxlen_path, std::string("malformed JSON: ") + e.what());
  }
  for (const auto& d : lc.datasets)
    if (maxlen.contains(d) && maxlen[d].is_number_integer()) gen = std::max<int64_t>(gen, maxlen[d].get<int64_t>());
  const int64_t budget = max_position_embeddings - gen;
  if (budget <= 0) throw Error("LongBench: the model's max_position_embeddings (" + std::to_string(max_position_embeddings) +
                               ") leaves no prompt budget after " + std::to_string(gen) + " generated tokens");
  return {budget, "max_position_embeddings " + std::to_string(max_position_embeddings) + " - " + std::to_string(gen)};
}

EvalConfig EvalConfig::load(const std::string& path) {
  auto root = ConfigNode::load_file(path);
  EvalConfig c;
  c.source = path;
  c.model = root.require<std::string>("model");
  c.out_dir = root.require<std::string>("out_dir");
  c.device = root.get<std::string>("device", c.device);
  c.dtype = root.get<std::string>("dtype", c.dtype);
  c.threads = root.get<int>("threads", c.threads);
  c.chat_format = root.get<std::string>("chat_format", c.chat_format);
  c.llama3_date_header = root.get<bool>("llama3_date_header", c.llama3_date_header);
  c.seed = root.get<uint64_t>("seed", c.seed);
  c.prefill_chunk = root.get<int64_t>("prefill_chunk", c.prefill_chunk);
  if (c.prefill_chunk <= 0) fail(path, "prefill_chunk must be positive");
  std::set<std::string> names;
  for (auto& m : root.list("methods")) {
    EvalMethod e;
    e.name = m.require<std::string>("name");
    e.cache = m.get<std::string>("cache", e.cache);
    e.echo_dir = m.get<std::string>("echo_dir", "");
    e.echo.sink_tokens = m.get<int64_t>("sink_tokens", e.echo.sink_tokens);
    e.echo.recent_tokens = m.get<int64_t>("recent_tokens", e.echo.recent_tokens);
    e.echo.chunk_tokens = m.get<int64_t>("chunk_tokens", e.echo.chunk_tokens);
    e.low_rank.chunk_tokens = e.echo.chunk_tokens;
    const double ratio = m.get<double>("ratio", e.cache == "streaming" ? 0.0 : e.low_rank.ratio);
    e.low_rank.ratio = ratio;
    e.low_rank.group_heads = m.get<int64_t>("group_heads", e.low_rank.group_heads);
    e.streaming.sink_tokens = e.echo.sink_tokens;
    e.streaming.window_tokens = m.get<int64_t>("window", e.streaming.window_tokens);
    e.streaming.ratio = e.cache == "streaming" ? ratio : 0.0;
    if (e.cache == "kvzip" || e.cache == "echo_kvzip") {
      e.kvzip.ratio = m.get<double>("ratio", e.kvzip.ratio);
      e.kvzip.level = m.get<std::string>("level", e.kvzip.level);
      e.kvzip.storage = m.get<std::string>("storage", e.kvzip.storage);
      e.kvzip.chunk_tokens = m.get<int64_t>("score_chunk", e.kvzip.chunk_tokens);
      e.kvzip.calibration = m.get<std::vector<std::string>>("calibration", {});
      e.kvzip.calibration_tokens = m.get<int64_t>("calibration_tokens", e.kvzip.calibration_tokens);
      if (!(e.kvzip.ratio >= 0 && e.kvzip.ratio <= 1)) fail(path, "method '" + e.name + "': kvzip ratio must be in [0, 1]");
      if (e.kvzip.level != "pair" && e.kvzip.level != "uniform" && e.kvzip.level != "head")
        fail(path, "method '" + e.name + "': kvzip level must be pair, uniform or head");
      if (e.kvzip.storage != "compact" && e.kvzip.storage != "retain")
        fail(path, "method '" + e.name + "': kvzip storage must be compact or retain");
      if (e.cache == "echo_kvzip" && e.kvzip.level != "pair")
        fail(path, "method '" + e.name + "': echo_kvzip chooses tokens per layer from pair scores (no level setting)");
      if (e.kvzip.level == "head" && e.kvzip.calibration.empty())
        fail(path, "method '" + e.name + "': kvzip level head needs calibration (text files)");
      if (e.kvzip.chunk_tokens <= 0 || e.kvzip.calibration_tokens <= 0)
        fail(path, "method '" + e.name + "': score_chunk and calibration_tokens must be positive");
    }
    if (e.cache == "snapkv") {
      e.snapkv.ratio = m.get<double>("ratio", e.snapkv.ratio);
      e.snapkv.window = m.get<int64_t>("obs_window", e.snapkv.window);
      e.snapkv.kernel = m.get<int64_t>("kernel", e.snapkv.kernel);
      if (!(e.snapkv.ratio >= 0 && e.snapkv.ratio <= 1) || e.snapkv.window < 1 || e.snapkv.kernel < 1 || e.snapkv.kernel % 2 == 0)
        fail(path, "method '" + e.name + "': snapkv needs ratio in [0, 1], obs_window >= 1 and an odd kernel");
    }
    if (e.cache == "think" || e.cache == "hybrid") {
      e.think.window = m.get<int64_t>("obs_window", e.think.window);
      e.think_ratio = m.get<double>("ratio", 0.0);
      e.think.prune = m.get<double>("prune", e.think_ratio > 0 ? -1.0 : e.think.prune);
      if (e.think_ratio > 0 && e.think.prune >= 0) fail(path, "method '" + e.name + "': think takes ratio or prune, not both");
      if (e.cache == "hybrid" && e.think_ratio > 0)
        fail(path, "method '" + e.name + "': hybrid takes prune (key channels dropped); its ratio follows from the value plan");
      if (e.think_ratio > 0 && !(e.think_ratio >= 0.5 && e.think_ratio <= 1))
        fail(path, "method '" + e.name + "': think prunes keys only, so its ratio must be in [0.5, 1]");
      if (e.think_ratio <= 0 && !(e.think.prune >= 0 && e.think.prune <= 1))
        fail(path, "method '" + e.name + "': think prune must be in [0, 1]");
      if (e.think.window < 1) fail(path, "method '" + e.name + "': obs_window must be >= 1");
    }
    m.finish();
    static const std::set<std::string> kinds = {"full", "echo", "low_rank", "streaming", "kvzip", "snapkv", "think", "hybrid", "echo_kvzip"};
    if (!kinds.count(e.cache))
      fail(path, "method '" + e.name + "': cache must be full, echo, low_rank, streaming, kvzip, snapkv, think, hybrid or echo_kvzip (got '" +
                     e.cache + "')");
    if (e.cache == "streaming" && (e.streaming.ratio < 0 || e.streaming.ratio > 1 || e.streaming.window_tokens < 0))
      fail(path, "method '" + e.name + "': streaming needs 0 <= ratio <= 1 and window >= 0");
    if (e.cache == "low_rank" && !(e.low_rank.ratio > 0 && e.low_rank.ratio <= 1))
      fail(path, "method '" + e.name + "': ratio must be in (0, 1]");
    if ((e.cache == "echo" || e.cache == "hybrid" || e.cache == "echo_kvzip") && e.echo_dir.empty())
      fail(path, "method '" + e.name + "': cache " + e.cache + " needs echo_dir");
    if (!names.insert(e.name).second) fail(path, "method name '" + e.name + "' is used twice");
    c.methods.push_back(e);
  }
  if (c.methods.empty()) fail(path, "methods: give at least one method");
  if (root.has("ruler")) {
    auto r = root.child("ruler");
    RulerEvalConfig rc;
    rc.data_dir = r.require<std::string>("data_dir");
    rc.tasks = r.get<std::vector<std::string>>("tasks", {});
    rc.lengths = r.require<std::vector<int64_t>>("lengths");
    rc.samples = r.get<int64_t>("samples", rc.samples);
    rc.squad_path = r.get<std::string>("squad_path", "");
    rc.hotpotqa_path = r.get<std::string>("hotpotqa_path", "");
    rc.model_template = r.get<std::string>("template", rc.model_template);
    const std::string order = r.get<std::string>("document_order", "shared");
    if (order != "shared" && order != "per_sample")
      fail(path, "ruler.document_order: '" + order + "' (expected shared, RULER's, or per_sample)");
    rc.per_sample_document_order = order == "per_sample";
    r.finish();
    if (rc.lengths.empty() || rc.samples <= 0) fail(path, "ruler: needs lengths and samples > 0");
    c.ruler = rc;
  }
  if (root.has("niah")) {
    auto n = root.child("niah");
    NiahConfig nc;
    nc.setup = n.get<std::string>("setup", nc.setup);
    nc.metric = n.get<std::string>("metric", nc.metric);
    nc.haystack_path = n.require<std::string>("haystack");
    nc.lengths = n.require<std::vector<int64_t>>("lengths");
    nc.depths = n.require<std::vector<double>>("depths");
    nc.samples_per_cell = n.get<int64_t>("samples_per_cell", nc.samples_per_cell);
    nc.needle = n.get<std::string>("needle", nc.needle);
    nc.question = n.get<std::string>("question", nc.question);
    nc.instruction = n.get<std::string>("instruction", nc.instruction);
    nc.answer_prefix = n.get<std::string>("answer_prefix", nc.answer_prefix);
    nc.system = n.get<std::string>("system", nc.system);
    nc.ruler_template = n.get<std::string>("ruler_template", nc.ruler_template);
    nc.ruler_templates_path = n.get<std::string>("ruler_templates", nc.ruler_templates_path);
    nc.answer_keywords = n.get<std::vector<std::string>>("answer_keywords", {});
    nc.tokens_to_generate = n.get<int64_t>("tokens_to_generate", nc.tokens_to_generate);
    try {
      nc.resolve();
    } catch (const Error& e) {
      fail(path, e.what());
    }
    n.finish();
    c.niah = nc;
  }
  if (root.has("longbench")) {
    auto l = root.child("longbench");
    LongBenchEvalConfig lc;
    lc.data_dir = l.require<std::string>("data_dir");
    lc.config_dir = l.require<std::string>("config_dir");
    lc.datasets = l.require<std::vector<std::string>>("datasets");
    lc.max_length = l.get<int64_t>("max_length", lc.max_length);
    lc.model_name = l.get<std::string>("model_name", lc.model_name);
    lc.chat_form = l.get<std::string>("chat_form", lc.chat_form);
    lc.samples = l.get<int64_t>("samples", lc.samples);
    l.finish();
    if (lc.datasets.empty() || lc.max_length < 0) fail(path, "longbench: needs datasets and max_length >= 0 (0: from the model)");
    if (lc.chat_form != "auto" && lc.chat_form != "longbench" && lc.chat_form != "hf")
      fail(path, "longbench.chat_form '" + lc.chat_form + "' (expected auto, longbench or hf)");
    c.longbench = lc;
  }
  if (root.has("fidelity")) {
    auto f = root.child("fidelity");
    FidelityEvalConfig fc;
    fc.source = f.get<std::string>("source", fc.source);
    fc.path = f.require<std::string>("path");
    fc.tensor = f.get<std::string>("tensor", fc.tensor);
    fc.sequences = f.get<int64_t>("sequences", fc.sequences);
    fc.seq_len = f.get<int64_t>("seq_len", fc.seq_len);
    fc.chunk = f.get<int64_t>("chunk", fc.chunk);
    fc.context_tokens = f.get<int64_t>("context_tokens", fc.context_tokens);
    if (fc.context_tokens < 0 || (fc.context_tokens > 0 && fc.context_tokens + 2 > fc.seq_len))
      fail(path, "fidelity.context_tokens must be 0 or leave at least 2 tokens of seq_len after it");
    f.finish();
    if (fc.source != "jsonl" && fc.source != "text" && fc.source != "safetensors")
      fail(path, "fidelity.source must be jsonl, text or safetensors");
    if (fc.sequences <= 0 || fc.seq_len < 2 || fc.chunk <= 0) fail(path, "fidelity: sequences, seq_len, chunk must be positive");
    c.fidelity = fc;
  }
  root.finish();
  for (const auto& m : c.methods)
    if ((m.cache == "kvzip" || m.cache == "snapkv" || m.cache == "think" || m.cache == "hybrid" || m.cache == "echo_kvzip") &&
        c.fidelity && c.fidelity->context_tokens == 0)
      fail(path, "method '" + m.name + "' compresses a prompt: set fidelity.context_tokens (the prompt it compresses)");
  if (!c.ruler && !c.niah && !c.longbench && !c.fidelity)
    fail(path, "no benchmark: give at least one of ruler, niah, longbench, fidelity");
  return c;
}

}  // namespace echokv
