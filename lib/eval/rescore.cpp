#include "eval/rescore.h"

#include <map>

#include "core/error.h"
#include "eval/longbench_metrics.h"
#include "eval/py_text.h"
#include "eval/ruler_metrics.h"
#include "io/jsonl.h"

namespace echokv {

nlohmann::json rescore_longbench(const std::string& path, bool by_length) {
  const auto records = read_jsonl(path);
  if (records.empty()) fail(path, "no predictions");
  std::map<std::string, std::vector<longbench::Prediction>> by_dataset;
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const std::string where = path + ": record " + std::to_string(i + 1);
    longbench::Prediction p;
    p.pred = json_string(r, "pred", where);
    p.answers = json_string_list(r, "answers", where);
    if (r.contains("all_classes")) p.all_classes = json_string_list(r, "all_classes", where);
    if (r.contains("length")) {
      if (!r["length"].is_number_integer()) fail(where, "field 'length' must be an integer");
      p.length = r["length"].get<long long>();
    }
    const std::string dataset = json_string(r, "dataset", where);
    longbench::metric_for(dataset);  // unknown names fail here, with the dataset named
    by_dataset[dataset].push_back(std::move(p));
  }
  nlohmann::json out = {{"benchmark", "longbench"}, {"source", path}};
  double sum = 0;
  for (const auto& [dataset, preds] : by_dataset) {
    const double s = longbench::score_dataset(dataset, preds);
    out["scores"][dataset] = s;
    out["samples"][dataset] = preds.size();
    sum += s;
    if (by_length) out["by_length"][dataset] = longbench::score_dataset_by_length(dataset, preds);
  }
  out["average"] = py::round_to(sum / static_cast<double>(by_dataset.size()), 2);
  return out;
}

nlohmann::json rescore_ruler(const std::string& path) {
  const auto records = read_jsonl(path);
  if (records.empty()) fail(path, "no predictions");
  // task -> length -> (preds, refs)
  std::map<std::string, std::map<std::string, std::pair<std::vector<std::string>, std::vector<std::vector<std::string>>>>>
      groups;
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const std::string where = path + ": record " + std::to_string(i + 1);
    std::string length = "all";
    if (r.contains("max_length") && r["max_length"].is_number_integer()) {  // this harness: the target length
      length = std::to_string(r["max_length"].get<long long>());
    } else if (r.contains("length")) {
      if (!r["length"].is_number_integer()) fail(where, "field 'length' must be an integer");
      length = std::to_string(r["length"].get<long long>());
    }
    auto& g = groups[json_string(r, "task", where)][length];
    g.first.push_back(json_string(r, "pred", where));
    g.second.push_back(json_string_list(r, "outputs", where));
    if (g.second.back().empty()) fail(where, "field 'outputs' is empty");
  }
  nlohmann::json out = {{"benchmark", "ruler"}, {"source", path}};
  std::map<std::string, std::pair<double, int>> per_length;
  for (const auto& [task, lengths] : groups) {
    for (const auto& [length, g] : lengths) {
      const double s = ruler::score_task(task, g.first, g.second);
      out["scores"][task][length] = s;
      out["samples"][task][length] = g.first.size();
      per_length[length].first += s;
      per_length[length].second += 1;
    }
  }
  for (const auto& [length, sn] : per_length) out["average"][length] = py::round_to(sn.first / sn.second, 2);
  return out;
}

}  // namespace echokv
