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

class Tokenizer;
// A tokenizer with more tokens than the model's embedding is another model's (caught here at
// load, not when one of its ids first exceeds the vocabulary). `source`: the tokenizer's path.
void check_tokenizer_fits(const LlamaModel& model, const Tokenizer& tokenizer, const std::string& source);

// All-position logits [T, V] float32, computed in chunks with a full cache, or with `cache`.
torch::Tensor sequence_logits(LlamaModel& model, const std::vector<int64_t>& ids, int64_t chunk);
torch::Tensor sequence_logits(LlamaModel& model, const std::vector<int64_t>& ids, int64_t chunk, KVCache& cache);

}  // namespace echokv
