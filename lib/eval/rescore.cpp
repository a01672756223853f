#include "eval/rescore.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>

#include "core/error.h"
#include "core/files.h"
#include "eval/longbench_metrics.h"
#include "eval/py_text.h"
#include "eval/ruler_metrics.h"
#include "io/csv.h"
#include "io/jsonl.h"

namespace echokv {
namespace {

namespace fs = std::filesystem;

// A file, or the .jsonl / .csv files of a folder (sorted).
std::vector<std::string> input_files(const std::string& path) {
  if (!fs::exists(path)) fail(path, "no such file or folder");
  if (!fs::is_directory(path)) return {path};
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(path)) {
    const auto ext = e.path().extension().string();
    const auto name = e.path().filename().string();
    if (e.is_regular_file() && (ext == ".jsonl" || name == "predictions.csv")) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) fail(path, "holds no .jsonl prediction files");
  return files;
}

std::string stem(const std::string& path) { return fs::path(path).stem().string(); }

// The target length of RULER's layout (.../synthetic/<length>/pred/<task>.jsonl): the last
// all-digit folder in the path; "all" when there is none.
std::string length_from_path(const std::string& path) {
  std::string found = "all";
  for (const auto& part : fs::absolute(path).parent_path())
    if (const auto s = part.string(); !s.empty() && std::all_of(s.begin(), s.end(), ::isdigit)) found = s;
  return found;
}

using RulerGroups =
    std::map<std::string, std::map<std::string, std::pair<std::vector<std::string>, std::vector<std::vector<std::string>>>>>;

void add_ruler_jsonl(const std::string& path, RulerGroups& groups) {
  const auto records = read_jsonl(path);
  if (records.empty()) fail(path, "no predictions");
  // RULER's own files have no task field: "<task>.jsonl" or "<task>-<chunk>.jsonl".
  const std::string file_task = std::regex_replace(stem(path), std::regex("-[0-9]+$"), "");
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const std::string where = path + ": record " + std::to_string(i + 1);
    std::string length = "all";
    const bool official = !r.contains("task");
    if (r.contains("max_length") && r["max_length"].is_number_integer()) {  // this harness: the target length
      length = std::to_string(r["max_length"].get<long long>());
    } else if (official) {
      length = length_from_path(path);  // RULER's per-sample "length" is its token count, not the target
    } else if (r.contains("length")) {
      if (!r["length"].is_number_integer()) fail(where, "field 'length' must be an integer");
      length = std::to_string(r["length"].get<long long>());
    }
    const std::string task = official ? file_task : json_string(r, "task", where);
    auto& g = groups[task][length];
    g.first.push_back(json_string(r, "pred", where));
    g.second.push_back(json_string_list(r, "outputs", where));
    if (g.second.back().empty()) fail(where, "field 'outputs' is empty");
  }
}

// kvpress: predictions.csv with task, answer (a Python list literal) and predicted_answer.
void add_kvpress_csv(const std::string& path, RulerGroups& groups) {
  const auto rows = read_csv(path);
  if (rows.empty()) fail(path, "no predictions");
  static const std::regex control("[\\x00-\\x1f]");
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    const std::string where = path + ": row " + std::to_string(i + 1);
    for (const char* col : {"task", "answer", "predicted_answer"})
      if (!row.count(col)) fail(where, std::string("no column '") + col + "' (kvpress's predictions.csv expected)");
    std::vector<std::string> refs;
    try {
      refs = py::parse_str_list_literal(row.at("answer"));
    } catch (const Error& e) {
      fail(where, std::string("column 'answer': ") + e.what());
    }
    if (refs.empty()) fail(where, "column 'answer' is an empty list");
    // kvpress: np_pattern.sub("", x.strip()).strip(); RULER's own clean-up below then keeps it
    const std::string pred = py::strip(std::regex_replace(py::strip(row.at("predicted_answer")), control, ""));
    auto& g = groups[row.at("task")][row.count("length") ? row.at("length") : std::string("all")];
    g.first.push_back(pred);
    g.second.push_back(refs);
  }
}

}  // namespace

nlohmann::json rescore_longbench(const std::string& path, bool by_length) {
  std::map<std::string, std::vector<longbench::Prediction>> by_dataset;
  for (const auto& file : input_files(path)) {
    const auto records = read_jsonl(file);
    if (records.empty()) fail(file, "no predictions");
    for (size_t i = 0; i < records.size(); ++i) {
      const auto& r = records[i];
      const std::string where = file + ": record " + std::to_string(i + 1);
      longbench::Prediction p;
      p.pred = json_string(r, "pred", where);
      p.answers = json_string_list(r, "answers", where);
      if (r.contains("all_classes") && !r["all_classes"].is_null()) p.all_classes = json_string_list(r, "all_classes", where);
      const std::string dataset = r.contains("dataset") ? json_string(r, "dataset", where) : stem(file);
      const std::string base = dataset.size() > 2 && dataset.compare(dataset.size() - 2, 2, "_e") == 0
                                   ? dataset.substr(0, dataset.size() - 2) : dataset;
      try {
        longbench::metric_for(base);  // unknown names fail here, with the dataset named
      } catch (const Error& e) {
        fail(where, e.what());
      }
      if (!r.contains("length") || !r["length"].is_number_integer())
        fail(where, "no integer 'length' (every LongBench record carries one)");
      p.length = r["length"].get<long long>();
      by_dataset[dataset].push_back(std::move(p));
    }
  }
  nlohmann::json out = {{"benchmark", "longbench"}, {"source", path}};
  double sum = 0;
  for (const auto& [dataset, preds] : by_dataset) {
    const bool e = dataset.size() > 2 && dataset.compare(dataset.size() - 2, 2, "_e") == 0;
    const std::string base = e ? dataset.substr(0, dataset.size() - 2) : dataset;
    const double s = longbench::score_dataset(base, preds);
    out["scores"][dataset] = s;
    out["samples"][dataset] = preds.size();
    sum += s;
    if (by_length || e) out["by_length"][dataset] = longbench::score_dataset_by_length(base, preds);
  }
  out["average"] = py::round_to(sum / static_cast<double>(by_dataset.size()), 2);
  return out;
}

nlohmann::json rescore_ruler(const std::string& path) {
  RulerGroups groups;
  for (const auto& file : input_files(path)) {
    if (fs::path(file).extension() == ".csv") {
      add_kvpress_csv(file, groups);
    } else {
      add_ruler_jsonl(file, groups);
    }
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

void write_longbench_official(const std::vector<nlohmann::json>& records, const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& r : records) {
    if (r.contains("error")) continue;
    nlohmann::json o = {{"pred", r.at("pred")}, {"answers", r.at("answers")}, {"all_classes", r.value("all_classes", nlohmann::json())},
                        {"length", r.at("length")}};
    files[r.at("dataset").get<std::string>()] += o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  if (files.empty()) return;
  fs::create_directories(dir);
  for (const auto& [dataset, text] : files) write_text_atomic(join_path(dir, dataset + ".jsonl"), text);
}

}  // namespace echokv
