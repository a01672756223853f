#include "analysis/analyze_config.h"

#include <algorithm>
#include <sstream>

#include "core/yaml_config.h"

namespace echokv {

void read_calibration(ConfigNode& n, CalibrationConfig& k, const std::string& section) {
  const std::string& path = n.file();
  k.source = n.get<std::string>("source", k.source);
  if (k.source != "samples" && k.source != "ids" && k.source != "text")
    fail(path, section + ".source must be samples, ids or text (got '" + k.source + "')");
  k.sequences = n.get<int64_t>("sequences", k.sequences);
  k.seq_len = n.get<int64_t>("seq_len", k.seq_len);
  k.seed = n.get<uint64_t>("seed", k.seed);
  k.temperature = n.get<double>("temperature", k.temperature);
  k.ids_file = n.get_path("ids_file", "");
  k.ids_tensor = n.get<std::string>("ids_tensor", k.ids_tensor);
  k.files = n.path_list("files");
  k.tokenizer = n.get_path("tokenizer", "");
  if (k.sequences <= 0 || k.seq_len < 2) fail(path, section + ".sequences must be positive and seq_len >= 2");
  if (k.source == "ids" && k.ids_file.empty()) fail(path, section + ".source 'ids' needs " + section + ".ids_file");
  if (k.source == "text" && k.files.empty()) fail(path, section + ".source 'text' needs " + section + ".files");
  if (k.source == "samples" && !(k.temperature > 0)) fail(path, section + ".temperature must be > 0");
}

AnalyzeConfig AnalyzeConfig::load(const std::string& path) {
  auto root = ConfigNode::load_file(path);
  AnalyzeConfig c;
  c.source = path;
  c.model = root.require_path("model");
  c.device = root.get<std::string>("device", c.device);
  c.dtype = root.get<std::string>("dtype", c.dtype);
  c.threads = root.get<int>("threads", c.threads);
  if (root.has("calibration")) {
    auto cal = root.child("calibration");
    read_calibration(cal, c.calibration, "calibration");
    c.calibration.chunk = cal.get<int64_t>("chunk", c.calibration.chunk);
    cal.finish();
    if (c.calibration.chunk <= 0) fail(path, "calibration.chunk must be positive");
  }
  if (root.has("analysis")) {
    auto a = root.child("analysis");
    c.window = a.get<int>("window", c.window);
    c.ridge = a.get<double>("ridge", c.ridge);
    c.skip_first = a.get<int64_t>("skip_first", c.skip_first);
    a.finish();
    if (c.window < 1) fail(path, "analysis.window must be >= 1");
    if (c.ridge < 0) fail(path, "analysis.ridge must be >= 0");
    if (c.skip_first < 0) fail(path, "analysis.skip_first must be >= 0");
  }
  if (root.has("plans")) {
    auto p = root.child("plans");
    c.ratios = p.get<std::vector<double>>("ratios", c.ratios);
    c.primary_ratio = p.get<double>("primary_ratio", c.primary_ratio);
    c.paper_granularity = p.get<int64_t>("paper_granularity", c.paper_granularity);
    p.finish();
    for (double r : c.ratios)
      if (!(r > 0 && r <= 1)) fail(path, "plans.ratios must be in (0, 1] (got " + std::to_string(r) + ")");
    if (!(c.primary_ratio > 0 && c.primary_ratio <= 1)) fail(path, "plans.primary_ratio must be in (0, 1]");
    if (c.paper_granularity < 0) fail(path, "plans.paper_granularity must be >= 0");
  }
  root.finish();
  if (c.skip_first >= c.calibration.seq_len) fail(path, "analysis.skip_first must be below calibration.seq_len");
  return c;
}

std::string AnalyzeConfig::collection_fingerprint() const {
  std::ostringstream o;
  const auto& k = calibration;
  o << "model=" << model << ";dtype=" << dtype << ";source=" << k.source << ";sequences=" << k.sequences
    << ";seq_len=" << k.seq_len << ";seed=" << k.seed << ";temperature=" << k.temperature << ";ids=" << k.ids_file
    << ":" << k.ids_tensor << ";tokenizer=" << k.tokenizer << ";files=";
  for (const auto& f : k.files) o << f << ",";
  o << ";window=" << window << ";skip_first=" << skip_first;
  return o.str();
}

}  // namespace echokv
