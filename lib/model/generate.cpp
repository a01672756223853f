#include "model/generate.h"

#include <limits>

#include "core/clock.h"
#include "core/error.h"

namespace echokv {

torch::Tensor prefill(LlamaModel& model, KVCache& cache, const std::vector<int64_t>& ids, int64_t chunk) {
  if (ids.empty()) throw Error("prefill: empty prompt");
  if (chunk <= 0) chunk = static_cast<int64_t>(ids.size());
  torch::Tensor last;
  const int64_t n = static_cast<int64_t>(ids.size());
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t len = std::min(chunk, n - start);
    auto piece = torch::tensor(std::vector<int64_t>(ids.begin() + start, ids.begin() + start + len), torch::kInt64)
                     .view({1, len});
    ForwardOptions fo;
    fo.last_only = true;
    last = model.forward(piece, cache, fo);
  }
  return last.view({-1});
}

Sampler::Sampler(const SamplingOptions& options)
    : options_(options), generator_(at::detail::createCPUGenerator(options.seed)) {
  if (!options.greedy && options.temperature <= 0) throw Error("sampling: temperature must be > 0");
  if (options.top_p <= 0 || options.top_p > 1) throw Error("sampling: top_p must be in (0, 1]");
  if (options.top_k < 0) throw Error("sampling: top_k must be >= 0");
}

int64_t Sampler::next(const torch::Tensor& logits_in) {
  // Sampling happens on the CPU with a CPU generator, so a seed gives the same tokens on
  // every device.
  auto logits = logits_in.detach().to(torch::kCPU, torch::kFloat32).view({-1});
  if (options_.greedy) return logits.argmax().item<int64_t>();
  logits = logits / options_.temperature;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (options_.top_k > 0 && options_.top_k < logits.size(0)) {
    // HF TopKLogitsWarper: drop everything below the k-th largest value.
    auto kth = std::get<0>(torch::topk(logits, options_.top_k)).index({-1});
    logits = logits.masked_fill(logits < kth, neg_inf);
  }
  if (options_.top_p < 1.0) {
    // HF TopPLogitsWarper: sort ascending, drop the low tail whose mass is <= 1 - top_p,
    // always keeping the most likely token.
    auto [sorted, order] = torch::sort(logits, /*dim=*/0, /*descending=*/false);
    auto cumulative = torch::softmax(sorted, 0).cumsum(0);
    auto remove_sorted = cumulative <= (1.0 - options_.top_p);
    remove_sorted.index_put_({-1}, false);
    auto remove = torch::zeros_like(remove_sorted).scatter(0, order, remove_sorted);
    logits = logits.masked_fill(remove, neg_inf);
  }
  auto probs = torch::softmax(logits, 0);
  return at::multinomial(probs, 1, false, generator_).item<int64_t>();
}

GenerateResult generate(LlamaModel& model, KVCache& cache, const std::vector<int64_t>& prompt,
                        const GenerateOptions& options) {
  torch::NoGradGuard no_grad;
  const double t0 = monotonic_seconds();
  torch::Tensor logits = prefill(model, cache, prompt, options.prefill_chunk);
  const double prefill_seconds = monotonic_seconds() - t0;
  GenerateResult result = generate_from(model, cache, logits, options);
  result.prefill_seconds = prefill_seconds;
  return result;
}

GenerateResult generate_from(LlamaModel& model, KVCache& cache, torch::Tensor logits, const GenerateOptions& options) {
  GenerateResult result;
  Sampler sampler(options.sampling);
  torch::NoGradGuard no_grad;
  result.stop_reason = "max_new_tokens";
  const double t1 = monotonic_seconds();
  auto step = torch::empty({1, 1}, torch::kInt64);
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    if (i < options.min_new_tokens && !options.stop_ids.empty()) {
      logits = logits.clone();
      for (int64_t id : options.stop_ids)
        if (id >= 0 && id < logits.size(0)) logits[id] = -std::numeric_limits<float>::infinity();
    }
    const int64_t token = sampler.next(logits);
    result.tokens.push_back(token);
    const bool keep_going = !options.on_token || options.on_token(token);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), token) != options.stop_ids.end()) {
      result.stop_reason = "stop_id";
      break;
    }
    if (!keep_going) {
      result.stop_reason = "callback";
      break;
    }
    if (i + 1 == options.max_new_tokens) break;  // no forward needed for a token never used
    step.fill_(token);
    ForwardOptions fo;
    fo.last_only = true;
    logits = model.forward(step, cache, fo).view({-1});
  }
  result.decode_seconds = monotonic_seconds() - t1;
  return result;
}

}  // namespace echokv
