// RULER's scoring (NVIDIA/RULER eval/evaluate.py): prediction clean-up (strip, control
// characters -> "\n", strip), string_match_all for niah/vt/cwe/fwe and string_match_part for
// qa, case-insensitive substring tests, x100, rounded to 2 decimals.
#pragma once
#include <string>
#include <vector>

namespace echokv::ruler {

std::string postprocess_pred(const std::string& pred);
// Per sample: fraction of references found (all) / whether any is found (part), in [0, 1].
double string_match_all_sample(const std::string& pred, const std::vector<std::string>& refs);
double string_match_part_sample(const std::string& pred, const std::vector<std::string>& refs);
// Over samples (predictions already post-processed), x100, rounded to 2 decimals.
double string_match_all(const std::vector<std::string>& preds, const std::vector<std::vector<std::string>>& refs);
double string_match_part(const std::vector<std::string>& preds, const std::vector<std::vector<std::string>>& refs);

// "string_match_part" for qa_* tasks, "string_match_all" otherwise.
std::string metric_for_task(const std::string& task);
// Scores raw predictions of one task (post-processing included).
double score_task(const std::string& task, const std::vector<std::string>& raw_preds,
                  const std::vector<std::vector<std::string>>& refs);

}  // namespace echokv::ruler
