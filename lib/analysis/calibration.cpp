#include "analysis/calibration.h"

#include "model/session.h"

#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cache/cache_factory.h"
#include "core/error.h"
#include "core/files.h"
#include "io/jsonl.h"
#include "io/safetensors.h"
#include "model/generate.h"
#include "tokenizer/tokenizer.h"

namespace echokv {

std::vector<std::string> read_text_documents(const std::string& path) {
  if (!file_exists(path)) fail(path, "calibration file does not exist");
  std::vector<std::string> docs;
  const bool jsonl = path.size() >= 6 && path.substr(path.size() - 6) == ".jsonl";
  if (!jsonl) {
    docs.push_back(read_text_file(path));
    return docs;
  }
  size_t line = 0;
  for (const auto& record : read_jsonl(path)) {
    ++line;
    const std::string where = path + ": record " + std::to_string(line);
    docs.push_back(record.contains("text") ? json_string(record, "text", where) : instruction_record_text(record, where));
  }
  return docs;
}

std::string instruction_record_text(const nlohmann::json& record, const std::string& where) {
  if (!record.is_object() || !record.contains("instruction") || !record.contains("output"))
    fail(where, "needs a string 'text', or 'instruction' and 'output' (LongAlpaca-style)");
  std::string text = json_string(record, "instruction", where);
  if (record.contains("input")) {
    const std::string input = json_string(record, "input", where);
    if (!input.empty()) text += "\n" + input;
  }
  return text + "\n" + json_string(record, "output", where);
}

CalibrationData::CalibrationData(const CalibrationConfig& config, const std::string& model_dir, LlamaModel& model,
                                 int64_t extra)
    : config_(config), model_(model) {
  const auto& c = config_;
  const auto& mc = model.config();
  if (!mc.bos_token_ids.empty()) bos_ = mc.bos_token_ids[0];
  count_ = c.sequences + extra;
  if (c.source == "ids") {
    auto file = SafetensorsFile::open(c.ids_file);
    if (!file->contains(c.ids_tensor)) fail(c.ids_file, "no tensor named '" + c.ids_tensor + "'");
    auto t = file->tensor(c.ids_tensor);
    if (t.is_floating_point() || t.dim() < 1 || t.dim() > 2)
      fail(c.ids_file, "tensor '" + c.ids_tensor + "' must be integer ids [N, T] or [T]");
    t = t.to(torch::kInt64).view({t.dim() == 1 ? 1 : t.size(0), -1});
    if (t.min().item<int64_t>() < 0 || t.max().item<int64_t>() >= mc.vocab_size)
      fail(c.ids_file, "tensor '" + c.ids_tensor + "' holds ids outside the model's vocabulary");
    const int64_t len = std::min<int64_t>(t.size(1), c.seq_len);
    if (t.size(0) < count_)
      fail(c.ids_file, "tensor '" + c.ids_tensor + "' has " + std::to_string(t.size(0)) + " rows, " +
                           std::to_string(count_) + " sequences are needed");
    for (int64_t i = 0; i < count_; ++i) {
      auto row = t[i].slice(0, 0, len).contiguous();
      rows_.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + len);
    }
  } else if (c.source == "text") {
    const std::string tok_path = c.tokenizer.empty() ? model_dir : c.tokenizer;
    auto tokenizer = load_tokenizer(tok_path);
    check_tokenizer_fits(model, *tokenizer, tok_path);
    const auto eos = tokenizer->eos_id();
    for (const auto& f : c.files)
      for (const auto& doc : read_text_documents(f)) {
        for (int64_t id : tokenizer->encode(doc, false)) stream_.push_back(int32_t(id));
        if (eos) stream_.push_back(int32_t(*eos));
      }
    const int64_t span = c.seq_len - 1;
    if (int64_t(stream_.size()) < span)
      fail(c.files.front(), "calibration text has " + std::to_string(stream_.size()) + " tokens, fewer than seq_len");
    std::mt19937_64 rng(c.seed);
    std::uniform_int_distribution<int64_t> pick(0, int64_t(stream_.size()) - span);
    for (int64_t i = 0; i < count_; ++i) offsets_.push_back(pick(rng));
  }
}

std::vector<int64_t> CalibrationData::sequence(int64_t i) {
  const auto& c = config_;
  if (c.source == "ids") return rows_.at(i);
  if (c.source == "text") {
    std::vector<int64_t> ids{bos_};
    const int64_t off = offsets_.at(i);
    for (int64_t j = 0; j < c.seq_len - 1; ++j) ids.push_back(stream_[off + j]);
    return ids;
  }
  // samples: the model's own continuation of BOS, generated once.
  if (int64_t(samples_.size()) <= i) samples_.resize(i + 1);
  if (!samples_[i].empty()) return samples_[i];
  auto cache = make_full_cache(model_, c.seq_len);
  GenerateOptions g;
  g.max_new_tokens = c.seq_len - 1;
  g.sampling.greedy = false;
  g.sampling.temperature = c.temperature;
  g.sampling.seed = c.seed + uint64_t(i);
  auto result = generate(model_, *cache, {bos_}, g);
  std::vector<int64_t> ids{bos_};
  ids.insert(ids.end(), result.tokens.begin(), result.tokens.end());
  samples_[i] = ids;
  return ids;
}

std::string CalibrationData::describe() const {
  const auto& c = config_;
  std::ostringstream o;
  if (c.source == "samples")
    o << count_ << " sequences of " << c.seq_len << " tokens sampled by the model from BOS (temperature "
      << c.temperature << ", seed " << c.seed << "+i)";
  else if (c.source == "ids")
    o << count_ << " sequences from " << c.ids_file << " [" << c.ids_tensor << "]";
  else {
    o << count_ << " spans of " << c.seq_len << " tokens (BOS + text) at seeded offsets (seed " << c.seed << ") in ";
    for (size_t i = 0; i < c.files.size(); ++i) o << (i ? ", " : "") << c.files[i];
    o << " (" << stream_.size() << " tokens)";
  }
  return o.str();
}

}  // namespace echokv
