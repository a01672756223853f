#include "model/session.h"

#include "cache/cache_factory.h"
#include "core/error.h"
#include "core/runtime.h"
#include "tokenizer/tokenizer.h"

namespace echokv {

std::shared_ptr<LlamaModel> load_model_for_run(const std::string& dir, const std::string& device,
                                               const std::string& dtype, int threads) {
  configure_threads(threads);
  LoadOptions opt;
  opt.device = device;
  opt.dtype = dtype;
  return LlamaModel::load(dir, opt);
}

void check_ids_in_vocab(const LlamaModel& model, const std::vector<int64_t>& ids) {
  for (int64_t id : ids)
    if (id < 0 || id >= model.config().vocab_size)
      throw Error("token id " + std::to_string(id) + " is outside the model's vocabulary [0, " +
                  std::to_string(model.config().vocab_size) + ")");
}

void check_tokenizer_fits(const LlamaModel& model, const Tokenizer& tokenizer, const std::string& source) {
  const int64_t tokens = tokenizer.vocab_size(), rows = model.config().vocab_size;
  if (tokens > rows)
    fail(source, "the tokenizer has " + std::to_string(tokens) + " tokens but the model (" + model.source() + ") embeds " +
                     std::to_string(rows) + ": a tokenizer of another model?");
}

torch::Tensor sequence_logits(LlamaModel& model, const std::vector<int64_t>& ids, int64_t chunk) {
  auto cache = make_full_cache(model, static_cast<int64_t>(ids.size()));
  return sequence_logits(model, ids, chunk, *cache);
}

torch::Tensor sequence_logits(LlamaModel& model, const std::vector<int64_t>& ids, int64_t chunk, KVCache& cache) {
  check_ids_in_vocab(model, ids);
  const int64_t n = static_cast<int64_t>(ids.size());
  if (chunk <= 0) chunk = n;
  auto all = torch::tensor(ids, torch::kInt64).view({1, n}).to(model.device());
  std::vector<torch::Tensor> parts;
  for (int64_t s = 0; s < n; s += chunk)
    parts.push_back(model.forward(all.narrow(1, s, std::min(chunk, n - s)), cache)[0].to(torch::kCPU));
  return torch::cat(parts, 0);
}

}  // namespace echokv
