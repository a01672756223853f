// Re-scoring prediction files written by this harness or by the official ones.
//   LongBench: one object per line with dataset, pred, answers, all_classes (length for -E).
//   RULER    : one object per line with task, pred, outputs (length optional).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace echokv {

// {"benchmark": "longbench", "scores": {dataset: score}, "samples": {dataset: n},
//  "average": mean of the dataset scores, ["by_length": {dataset: {bucket: score}}]}
nlohmann::json rescore_longbench(const std::string& path, bool by_length);

// {"benchmark": "ruler", "scores": {task: {length: score}}, "samples": {task: {length: n}},
//  "average": {length: mean over tasks}}; length "all" when records carry none.
nlohmann::json rescore_ruler(const std::string& path);

}  // namespace echokv
