#include "eval/eval_config.h"

#include <set>

#include "core/yaml_config.h"

namespace echokv {

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
    m.finish();
    if (e.cache != "full" && e.cache != "echo" && e.cache != "low_rank" && e.cache != "streaming")
      fail(path, "method '" + e.name + "': cache must be full, echo, low_rank or streaming (got '" + e.cache + "')");
    if (e.cache == "streaming" && (e.streaming.ratio < 0 || e.streaming.ratio > 1 || e.streaming.window_tokens < 0))
      fail(path, "method '" + e.name + "': streaming needs 0 <= ratio <= 1 and window >= 0");
    if (e.cache == "low_rank" && !(e.low_rank.ratio > 0 && e.low_rank.ratio <= 1))
      fail(path, "method '" + e.name + "': ratio must be in (0, 1]");
    if (e.cache == "echo" && e.echo_dir.empty()) fail(path, "method '" + e.name + "': cache echo needs echo_dir");
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
    r.finish();
    if (rc.lengths.empty() || rc.samples <= 0) fail(path, "ruler: needs lengths and samples > 0");
    c.ruler = rc;
  }
  if (root.has("niah")) {
    auto n = root.child("niah");
    NiahConfig nc;
    nc.haystack_path = n.require<std::string>("haystack");
    nc.lengths = n.require<std::vector<int64_t>>("lengths");
    nc.depths = n.require<std::vector<double>>("depths");
    nc.needle = n.get<std::string>("needle", nc.needle);
    nc.question = n.get<std::string>("question", nc.question);
    nc.instruction = n.get<std::string>("instruction", nc.instruction);
    nc.answer_prefix = n.get<std::string>("answer_prefix", nc.answer_prefix);
    nc.answer_keywords = n.get<std::vector<std::string>>("answer_keywords", {});
    nc.tokens_to_generate = n.get<int64_t>("tokens_to_generate", nc.tokens_to_generate);
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
    lc.samples = l.get<int64_t>("samples", lc.samples);
    l.finish();
    if (lc.datasets.empty() || lc.max_length <= 0) fail(path, "longbench: needs datasets and max_length > 0");
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
    f.finish();
    if (fc.source != "jsonl" && fc.source != "text" && fc.source != "safetensors")
      fail(path, "fidelity.source must be jsonl, text or safetensors");
    if (fc.sequences <= 0 || fc.seq_len < 2 || fc.chunk <= 0) fail(path, "fidelity: sequences, seq_len, chunk must be positive");
    c.fidelity = fc;
  }
  root.finish();
  if (!c.ruler && !c.niah && !c.longbench && !c.fidelity)
    fail(path, "no benchmark: give at least one of ruler, niah, longbench, fidelity");
  return c;
}

}  // namespace echokv
