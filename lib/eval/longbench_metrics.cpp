#include "eval/longbench_metrics.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "eval/py_text.h"
#include "eval/rouge.h"
#include "eval/sequence_matcher.h"

namespace echokv::longbench {
namespace {

const std::string kPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";  // string.punctuation

std::string base_name(const std::string& dataset) {
  if (dataset.size() > 2 && dataset.compare(dataset.size() - 2, 2, "_e") == 0) return dataset.substr(0, dataset.size() - 2);
  return dataset;
}

double fraction_equal(const std::vector<std::string>& numbers, const std::string& target) {
  if (numbers.empty()) return 0.0;
  size_t right = 0;
  for (const auto& n : numbers)
    if (n == target) ++right;
  return static_cast<double>(right) / static_cast<double>(numbers.size());
}

}  // namespace

std::string normalize_answer(const std::string& s) {
  std::string no_punc;
  for (char c : py::lower(s))
    if (kPunctuation.find(c) == std::string::npos) no_punc.push_back(c);
  const std::string no_articles = py::sub(R"(\b(a|an|the)\b)", " ", no_punc);
  return py::join(py::split(no_articles), " ");
}

double qa_f1_score(const std::string& prediction, const std::string& ground_truth) {
  const auto p = py::split(normalize_answer(prediction));
  const auto g = py::split(normalize_answer(ground_truth));
  std::map<std::string, long> pc, gc;
  for (const auto& w : p) ++pc[w];
  for (const auto& w : g) ++gc[w];
  long same = 0;
  for (const auto& [w, c] : pc) {
    auto it = gc.find(w);
    if (it != gc.end()) same += std::min(c, it->second);
  }
  if (same == 0) return 0.0;
  const double precision = 1.0 * same / static_cast<double>(p.size());
  const double recall = 1.0 * same / static_cast<double>(g.size());
  return (2 * precision * recall) / (precision + recall);
}

double rouge_score(const std::string& prediction, const std::string& ground_truth) {
  return rouge_l_f(prediction, ground_truth);
}

double classification_score(const std::string& prediction, const std::string& ground_truth,
                            const std::vector<std::string>& all_classes) {
  std::vector<std::string> matches;
  for (const auto& c : all_classes)
    if (py::contains(prediction, c)) matches.push_back(c);
  // `for term in list: if ...: list.remove(term)` — removing shifts the next element into the
  // current slot, which the iterator then skips; remove() drops the first equal element.
  for (size_t i = 0; i < matches.size(); ++i) {
    const std::string term = matches[i];
    if (py::contains(ground_truth, term) && term != ground_truth)
      matches.erase(std::find(matches.begin(), matches.end(), term));
  }
  if (std::find(matches.begin(), matches.end(), ground_truth) == matches.end()) return 0.0;
  return 1.0 / static_cast<double>(matches.size());
}

double retrieval_score(const std::string& prediction, const std::string& ground_truth) {
  const auto ids = py::findall(R"(Paragraph (\d+))", ground_truth);
  if (ids.empty()) throw Error("passage_retrieval_en answer has no 'Paragraph N': '" + ground_truth + "'");
  return fraction_equal(py::findall(R"(\d+)", prediction), ids[0]);
}

double retrieval_zh_score(const std::string& prediction, const std::string& ground_truth) {
  const auto ids = py::findall("段落(\\d+)", ground_truth);
  if (ids.empty()) throw Error("passage_retrieval_zh answer has no '段落N': '" + ground_truth + "'");
  return fraction_equal(py::findall(R"(\d+)", prediction), ids[0]);
}

double count_score(const std::string& prediction, const std::string& ground_truth) {
  return fraction_equal(py::findall(R"(\d+)", prediction), ground_truth);
}

double code_sim_score(const std::string& prediction, const std::string& ground_truth) {
  std::string chosen;
  for (const auto& line : py::split_on(py::lstrip_chars(prediction, "\n"), "\n")) {
    if (!py::contains(line, "`") && !py::contains(line, "#") && !py::contains(line, "//")) {
      chosen = line;
      break;
    }
  }
  return fuzz_ratio(chosen, ground_truth) / 100.0;
}

std::string metric_for(const std::string& dataset) {
  static const std::map<std::string, std::string> table = {
      {"narrativeqa", "qa_f1"}, {"qasper", "qa_f1"}, {"multifieldqa_en", "qa_f1"}, {"multifieldqa_zh", "qa_f1_zh"},
      {"hotpotqa", "qa_f1"}, {"2wikimqa", "qa_f1"}, {"musique", "qa_f1"}, {"dureader", "rouge_zh"},
      {"gov_report", "rouge"}, {"qmsum", "rouge"}, {"multi_news", "rouge"}, {"vcsum", "rouge_zh"},
      {"trec", "classification"}, {"triviaqa", "qa_f1"}, {"samsum", "rouge"}, {"lsht", "classification"},
      {"passage_retrieval_en", "retrieval"}, {"passage_count", "count"}, {"passage_retrieval_zh", "retrieval_zh"},
      {"lcc", "code_sim"}, {"repobench-p", "code_sim"}};
  auto it = table.find(base_name(dataset));
  if (it == table.end()) throw Error("unknown LongBench dataset '" + dataset + "'");
  return it->second;
}

bool metric_supported(const std::string& dataset) {
  const std::string m = metric_for(dataset);
  return m != "qa_f1_zh" && m != "rouge_zh";
}

bool first_line_only(const std::string& dataset) {
  const std::string b = base_name(dataset);
  return b == "trec" || b == "triviaqa" || b == "samsum" || b == "lsht";
}

double score_sample(const std::string& dataset, const Prediction& p) {
  const std::string metric = metric_for(dataset);
  if (!metric_supported(dataset))
    throw Error("LongBench dataset '" + dataset + "' uses the Chinese metric " + metric +
                " (jieba word segmentation), which is not supported yet");
  std::string pred = p.pred;
  if (first_line_only(dataset)) pred = py::split_on(py::lstrip_chars(pred, "\n"), "\n")[0];
  double best = 0.0;
  for (const auto& truth : p.answers) {
    double s = 0.0;
    if (metric == "qa_f1") s = qa_f1_score(pred, truth);
    else if (metric == "rouge") s = rouge_score(pred, truth);
    else if (metric == "classification") s = classification_score(pred, truth, p.all_classes);
    else if (metric == "retrieval") s = retrieval_score(pred, truth);
    else if (metric == "retrieval_zh") s = retrieval_zh_score(pred, truth);
    else if (metric == "count") s = count_score(pred, truth);
    else if (metric == "code_sim") s = code_sim_score(pred, truth);
    best = std::max(best, s);
  }
  return best;
}

double score_dataset(const std::string& dataset, const std::vector<Prediction>& samples) {
  if (samples.empty()) throw Error("LongBench dataset '" + dataset + "': no predictions to score");
  // eval.py keeps the all_classes of the file's last record for every sample.
  double total = 0.0;
  for (auto p : samples) {
    p.all_classes = samples.back().all_classes;
    total += score_sample(dataset, p);
  }
  return py::round_to(100 * total / static_cast<double>(samples.size()), 2);
}

std::map<std::string, double> score_dataset_by_length(const std::string& dataset,
                                                      const std::vector<Prediction>& samples) {
  std::map<std::string, std::pair<double, size_t>> sums;
  for (auto p : samples) {
    p.all_classes = samples.back().all_classes;
    if (p.length < 0) throw Error("LongBench-E scoring of '" + dataset + "' needs each prediction's 'length'");
    const std::string bucket = p.length < 4000 ? "0-4k" : p.length < 8000 ? "4-8k" : "8k+";
    auto& [sum, n] = sums[bucket];
    sum += score_sample(dataset, p);
    ++n;
  }
  std::map<std::string, double> out;
  for (const auto& [bucket, sn] : sums) out[bucket] = py::round_to(100 * sn.first / static_cast<double>(sn.second), 2);
  return out;
}

}  // namespace echokv::longbench
