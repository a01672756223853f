// Loading a model for a command: flags -> LoadOptions, thread setup, and a check that
// prompt ids fit the vocabulary (a clear error instead of an index crash).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/llama.h"

namespace echokv {

std::shared_ptr<LlamaModel> load_model_for_run(const std::string& dir, const std::string& device,
                                               const std::string& dtype, int threads);

void check_ids_in_vocab(const LlamaModel& model, const std::vector<int64_t>& ids);

// All-position logits [T, V] float32, computed in chunks with a full cache, or with `cache`.
torch::Tensor sequence_logits(LlamaModel& model, const std::vector<int64_t>& ids, int64_t chunk);
torch::Tensor sequence_logits(LlamaModel& model, const std::vector<int64_t>& ids, int64_t chunk, KVCache& cache);

}  // namespace echokv
