// LongBench v1 metrics, matching THUDM/LongBench metrics.py + eval.py to the digit:
// qa_f1, rouge-L, classification (with its remove-while-iterating quirk), retrieval (en/zh),
// count, code_sim; per-sample max over ground truths, first-line cut for trec, triviaqa,
// samsum and lsht, per-dataset round(100 * mean, 2), LongBench-E length buckets.
// The Chinese metrics (qa_f1_zh, rouge_zh: jieba segmentation) are not supported: scoring
// multifieldqa_zh, dureader or vcsum throws a clear error.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace echokv::longbench {

std::string normalize_answer(const std::string& s);
double qa_f1_score(const std::string& prediction, const std::string& ground_truth);
double rouge_score(const std::string& prediction, const std::string& ground_truth);
double classification_score(const std::string& prediction, const std::string& ground_truth,
                            const std::vector<std::string>& all_classes);
double retrieval_score(const std::string& prediction, const std::string& ground_truth);     // "Paragraph N"
double retrieval_zh_score(const std::string& prediction, const std::string& ground_truth);  // "段落N"
double count_score(const std::string& prediction, const std::string& ground_truth);
double code_sim_score(const std::string& prediction, const std::string& ground_truth);

// Name of the dataset's metric ("qa_f1", "rouge", ...); throws for unknown datasets.
// Dataset names may carry LongBench-E's "_e" suffix.
std::string metric_for(const std::string& dataset);
bool metric_supported(const std::string& dataset);
bool first_line_only(const std::string& dataset);  // trec, triviaqa, samsum, lsht

struct Prediction {
  std::string pred;
  std::vector<std::string> answers;
  std::vector<std::string> all_classes;
  long long length = -1;  // LongBench-E bucket input; -1 when absent
};

// One sample's score in [0, 1]: max over ground truths after the first-line cut.
double score_sample(const std::string& dataset, const Prediction& p);
// round(100 * mean, 2) over the samples (eval.py's scorer; like it, every sample is scored
// with the all_classes of the last sample, as eval.py reads them per file).
double score_dataset(const std::string& dataset, const std::vector<Prediction>& samples);
// LongBench-E: {"0-4k", "4-8k", "8k+"} -> round(100 * mean, 2) (buckets with no sample omitted).
std::map<std::string, double> score_dataset_by_length(const std::string& dataset,
                                                      const std::vector<Prediction>& samples);

}  // namespace echokv::longbench
