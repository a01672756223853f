#include "eval/ruler_metrics.h"

#include <algorithm>

#include "core/error.h"
#include "eval/py_text.h"

namespace echokv::ruler {

std::string postprocess_pred(const std::string& pred) {
  std::string s = py::strip(pred);
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20) c = '\n';
  return py::strip(s);
}

double string_match_all_sample(const std::string& pred, const std::vector<std::string>& refs) {
  if (refs.empty()) throw Error("RULER sample has no reference outputs");
  const std::string p = py::lower(pred);
  double found = 0;
  for (const auto& r : refs) found += py::contains(p, py::lower(r)) ? 1.0 : 0.0;
  return found / static_cast<double>(refs.size());
}

double string_match_part_sample(const std::string& pred, const std::vector<std::string>& refs) {
  if (refs.empty()) throw Error("RULER sample has no reference outputs");
  const std::string p = py::lower(pred);
  double best = 0;
  for (const auto& r : refs) best = std::max(best, py::contains(p, py::lower(r)) ? 1.0 : 0.0);
  return best;
}

namespace {

template <typename F>
double mean_x100(const std::vector<std::string>& preds, const std::vector<std::vector<std::string>>& refs, F f) {
  if (preds.size() != refs.size()) throw Error("RULER scoring: predictions and references differ in count");
  if (preds.empty()) throw Error("RULER scoring: no predictions");
  double sum = 0;
  for (size_t i = 0; i < preds.size(); ++i) sum += f(preds[i], refs[i]);
  return py::round_to(sum / static_cast<double>(preds.size()) * 100, 2);
}

}  // namespace

double string_match_all(const std::vector<std::string>& preds, const std::vector<std::vector<std::string>>& refs) {
  return mean_x100(preds, refs, string_match_all_sample);
}

double string_match_part(const std::vector<std::string>& preds, const std::vector<std::vector<std::string>>& refs) {
  return mean_x100(preds, refs, string_match_part_sample);
}

std::string metric_for_task(const std::string& task) {
  return task.rfind("qa", 0) == 0 ? "string_match_part" : "string_match_all";
}

double score_task(const std::string& task, const std::vector<std::string>& raw_preds,
                  const std::vector<std::vector<std::string>>& refs) {
  std::vector<std::string> preds;
  for (const auto& p : raw_preds) preds.push_back(postprocess_pred(p));
  return metric_for_task(task) == "string_match_part" ? string_match_part(preds, refs) : string_match_all(preds, refs);
}

}  // namespace echokv::ruler
