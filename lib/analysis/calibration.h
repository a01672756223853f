// Calibration token sequences for head analysis (and later reconstructor training), from one
// of three sources, deterministic given the config's seed:
//   samples - the model's own text: sequence i is sampled from BOS at the configured
//             temperature with seed + i (useful when no tokenizer exists, e.g. stories260K);
//   ids     - rows of an int tensor in a safetensors file ([N, T] or [T]);
//   text    - plain-text or JSONL ("text", or LongAlpaca instruction / output) files, tokenized, documents joined by EOS,
//             sequence i = BOS + a span at a seeded random offset.
#pragma once
#include <nlohmann/json.hpp>
#include <cstdint>
#include <memory>
#include <vector>

#include "analysis/analyze_config.h"
#include "model/llama.h"

namespace echokv {

class CalibrationData {
 public:
  // `extra` more sequences beyond calibration.sequences (e.g. a validation split).
  CalibrationData(const CalibrationConfig& config, const std::string& model_dir, LlamaModel& model, int64_t extra = 0);
  int64_t size() const { return count_; }
  // Sequence i (0 <= i < size()), token ids starting with BOS.
  std::vector<int64_t> sequence(int64_t i);
  std::string describe() const;

 private:
  CalibrationConfig config_;
  std::vector<std::vector<int64_t>> samples_;  // samples source: generated once, kept
  LlamaModel& model_;
  int64_t count_ = 0;
  int64_t bos_ = 1;
  std::vector<std::vector<int64_t>> rows_;  // ids source
  std::vector<int32_t> stream_;             // text source
  std::vector<int64_t> offsets_;            // text source
};

// Reads documents from plain-text or JSONL files; errors name the file and line. A JSONL
// line is an object with a string "text", or a LongAlpaca-style instruction record (what the
// EchoKV paper trains on): "instruction" and "output" strings (and an optional "input"),
// concatenated as prompt + answer: instruction, "\n" + input when non-empty, "\n" + output.
std::vector<std::string> read_text_documents(const std::string& path);
std::string instruction_record_text(const nlohmann::json& record, const std::string& where);

}  // namespace echokv
