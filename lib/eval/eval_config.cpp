#include "eval/eval_config.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/yaml_config.h"
#include "methods/registry.h"

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

namespace {

// `ratio: [0.7, 0.5, 0.3]` (or compression_ratio) in a method entry: one entry per value,
// named "<name>-<value>"; any other entry as it is.
std::vector<ConfigNode> expand_method_sweep(const ConfigNode& entry) {
  for (const char* key : {"ratio", "compression_ratio"}) {
    const YAML::Node values = entry.yaml()[key];
    if (!values || !values.IsSequence()) continue;
    if (values.size() == 0) fail(entry.file(), "key '" + entry.where(key) + "' is an empty list");
    const std::string name = entry.yaml()["name"] ? entry.yaml()["name"].as<std::string>() : "";
    std::vector<ConfigNode> out;
    for (size_t i = 0; i < values.size(); ++i) {
      YAML::Node copy = YAML::Clone(entry.yaml());
      copy[key] = values[i];
      if (!name.empty()) copy["name"] = name + "-" + values[i].as<std::string>();
      out.emplace_back(copy, entry.file(), entry.path() + "[" + key + "=" + values[i].as<std::string>() + "]");
    }
    return out;
  }
  return {entry};
}

std::string format_number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

YAML::Node parse_value(const std::string& text, const std::string& what) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(what + ": malformed value '" + text + "': " + e.what());
  }
}

// The overrides applied to the config's YAML (methods are filtered after sweep expansion).
void apply_overrides(YAML::Node& root, const std::string& path, const EvalOverrides& o) {
  YAML::Node methods = root["methods"];
  if (!methods || !methods.IsSequence()) fail(path, "key 'methods' must be a list");
  YAML::Node expanded(YAML::NodeType::Sequence);
  for (size_t i = 0; i < methods.size(); ++i) {
    if (!methods[i].IsMap()) fail(path, "key 'methods[" + std::to_string(i) + "]' must be a mapping");
    ConfigNode entry(methods[i], path, "methods[" + std::to_string(i) + "]");
    for (auto& m : expand_method_sweep(entry)) expanded.push_back(m.yaml());
  }
  YAML::Node kept(YAML::NodeType::Sequence);
  std::set<std::string> found;
  for (size_t i = 0; i < expanded.size(); ++i) {
    const std::string name = expanded[i]["name"] ? expanded[i]["name"].as<std::string>() : "";
    if (!o.methods.empty() && !std::count(o.methods.begin(), o.methods.end(), name)) continue;
    found.insert(name);
    YAML::Node m = YAML::Clone(expanded[i]);
    if (o.ratio) {
      for (const char* k : {"compression_ratio", "context_ratio"}) m.remove(k);
      m["ratio"] = *o.ratio;
      m["name"] = name + "@" + format_number(*o.ratio);
    }
    kept.push_back(m);
  }
  for (const auto& want : o.methods)
    if (!found.count(want)) fail(path, "--method " + want + ": no method of that name (after ratio lists are expanded)");
  root["methods"] = kept;
  std::vector<std::string> settings = o.settings;
  if (o.fraction) settings.push_back("fraction=" + format_number(*o.fraction));
  for (const auto& kv : settings) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw Error("--set " + kv + ": expected key=value (a.b.c=value from the config's root)");
    const std::string key = kv.substr(0, eq);
    YAML::Node value = parse_value(kv.substr(eq + 1), "--set " + kv);
    ConfigNode::tag_working_directory_values(value);  // a relative path on the command line means the working directory
    std::vector<std::string> parts;
    for (size_t a = 0, b; a <= key.size(); a = b + 1) {
      b = key.find('.', a);
      if (b == std::string::npos) b = key.size();
      if (b == a) throw Error("--set " + kv + ": empty key part");
      parts.push_back(key.substr(a, b - a));
    }
    if (parts[0] == "methods") {
      if (parts.size() != 2) throw Error("--set " + kv + ": methods.KEY=value sets KEY on every method");
      for (size_t i = 0; i < root["methods"].size(); ++i) root["methods"][i][parts[1]] = value;
      continue;
    }
    YAML::Node node = root;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      if (!node[parts[i]]) node[parts[i]] = YAML::Node(YAML::NodeType::Map);
      if (!node[parts[i]].IsMap()) throw Error("--set " + kv + ": '" + parts[i] + "' is not a mapping in " + path);
      node.reset(node[parts[i]]);
    }
    node[parts.back()] = value;
  }
}

}  // namespace

EvalConfig EvalConfig::load(const std::string& path, const EvalOverrides& overrides) {
  auto root = ConfigNode::load_file(path);
  if (!overrides.empty()) {
    YAML::Node yaml = YAML::Clone(root.yaml());
    apply_overrides(yaml, path, overrides);
    root = ConfigNode(yaml, path, "");
  }
  EvalConfig c;
  c.source = path;
  {
    YAML::Emitter emitter;
    emitter << root.yaml();
    c.yaml = overrides.empty() ? read_text_file(path) : std::string(emitter.c_str()) + "\n";
  }
  c.fraction = root.get<double>("fraction", c.fraction);
  if (!(c.fraction > 0 && c.fraction <= 1)) fail(path, "fraction must be in (0, 1]");
  c.model = root.require_path("model");
  c.out_dir = root.require_path("out_dir");
  c.device = root.get<std::string>("device", c.device);
  c.dtype = root.get<std::string>("dtype", c.dtype);
  c.threads = root.get<int>("threads", c.threads);
  c.chat_format = root.get<std::string>("chat_format", c.chat_format);
  c.llama3_date_header = root.get<bool>("llama3_date_header", c.llama3_date_header);
  c.seed = root.get<uint64_t>("seed", c.seed);
  c.prefill_chunk = root.get<int64_t>("prefill_chunk", c.prefill_chunk);
  if (c.prefill_chunk <= 0) fail(path, "prefill_chunk must be positive");
  std::set<std::string> names;
  for (auto& entry : root.list("methods")) {
    for (auto& m : expand_method_sweep(entry)) {
      EvalMethod e;
      e.name = m.require<std::string>("name");
      e.method = make_method(m, "method '" + e.name + "'");
      e.cache = e.method->kind();
      if (!names.insert(e.name).second) fail(path, "method name '" + e.name + "' is used twice");
      c.methods.push_back(e);
    }
  }
  if (c.methods.empty()) fail(path, "methods: give at least one method");
  if (root.has("ruler")) {
    auto r = root.child("ruler");
    RulerEvalConfig rc;
    rc.data_dir = r.require_path("data_dir");
    rc.tasks = r.get<std::vector<std::string>>("tasks", {});
    rc.lengths = r.require<std::vector<int64_t>>("lengths");
    rc.samples = r.get<int64_t>("samples", rc.samples);
    rc.squad_path = r.get_path("squad_path", "");
    rc.hotpotqa_path = r.get_path("hotpotqa_path", "");
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
    nc.haystack_path = n.require_path("haystack");
    nc.lengths = n.require<std::vector<int64_t>>("lengths");
    nc.depths = n.require<std::vector<double>>("depths");
    nc.samples_per_cell = n.get<int64_t>("samples_per_cell", nc.samples_per_cell);
    nc.needle = n.get<std::string>("needle", nc.needle);
    nc.question = n.get<std::string>("question", nc.question);
    nc.instruction = n.get<std::string>("instruction", nc.instruction);
    nc.answer_prefix = n.get<std::string>("answer_prefix", nc.answer_prefix);
    nc.system = n.get<std::string>("system", nc.system);
    nc.ruler_template = n.get<std::string>("ruler_template", nc.ruler_template);
    nc.ruler_templates_path = n.get_path("ruler_templates", nc.ruler_templates_path);
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
    lc.data_dir = l.require_path("data_dir");
    lc.config_dir = l.require_path("config_dir");
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
    fc.path = f.require_path("path");
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
    if (m.method->scores_prompt() && c.fidelity && c.fidelity->context_tokens == 0)
      fail(path, "method '" + m.name + "' compresses a prompt: set fidelity.context_tokens (the prompt it compresses)");
  if (!c.ruler && !c.niah && !c.longbench && !c.fidelity)
    fail(path, "no benchmark: give at least one of ruler, niah, longbench, fidelity");
  return c;
}

}  // namespace echokv
