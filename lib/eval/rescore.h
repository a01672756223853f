// Re-scoring prediction files written by this harness or by the official ones.
//   LongBench: a file or a folder of them; records with dataset, pred, answers, all_classes,
//              length — or LongBench's own pred/<model>/<dataset>.jsonl (pred.py's records carry
//              no dataset: it is the file's name). LongBench-E names ("hotpotqa_e") score by
//              length buckets like eval.py --e; a record without an integer length is an error.
//   RULER    : this harness's files (task, pred, outputs; max_length or length); RULER's own
//              prediction files (<task>.jsonl or <task>-<chunk>.jsonl, no task field: the file
//              name; the target length from a numeric folder in the path, as RULER's layout
//              .../synthetic/4096/pred/ has it); kvpress's predictions.csv (task, answer,
//              predicted_answer), cleaned as kvpress does (control characters removed).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace echokv {

// {"benchmark": "longbench", "scores": {dataset: score}, "samples": {dataset: n},
//  "average": mean of the dataset scores, ["by_length": {dataset: {bucket: score}}]}
nlohmann::json rescore_longbench(const std::string& path, bool by_length);

// {"benchmark": "ruler", "scores": {task: {length: score}}, "samples": {task: {length: n}},
//  "average": {length: mean over tasks}}; length "all" when the records and path carry none.
nlohmann::json rescore_ruler(const std::string& path);

// This harness's LongBench records in the official layout, one <dataset>.jsonl per dataset in
// `dir` with pred, answers, all_classes and length, so LongBench's eval.py scores them unchanged.
void write_longbench_official(const std::vector<nlohmann::json>& records, const std::string& dir);

}  // namespace echokv
