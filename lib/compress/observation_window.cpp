#include "compress/observation_window.h"

#include "cache/cache_factory.h"
#include "core/clock.h"
#include "core/error.h"
#include "model/generate.h"

namespace echokv {
namespace {

class QueryCapture : public LayerObserver {
 public:
  QueryCapture(const Rope& rope, int layers) : rope_(rope), q_(static_cast<size_t>(layers)) {}
  void on_qkv(int layer, const torch::Tensor& q_pre_rope, const torch::Tensor&, const torch::Tensor&,
              const torch::Tensor& positions) override {
    q_[static_cast<size_t>(layer)] = rope_.apply(q_pre_rope, positions).detach();
  }
  std::vector<torch::Tensor> take() { return std::move(q_); }

 private:
  const Rope& rope_;
  std::vector<torch::Tensor> q_;
};

}  // namespace

WindowQueries prefill_with_window_queries(LlamaModel& model, KVCache& cache, const std::vector<int64_t>& ids,
                                          int64_t window, int64_t chunk) {
  if (ids.empty()) throw Error("observation window: empty prompt");
  if (window < 1) throw Error("observation window: window must be >= 1");
  torch::NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(ids.size()), w = std::min(window, n);
  if (n > w) prefill(model, cache, std::vector<int64_t>(ids.begin(), ids.end() - w), chunk);
  QueryCapture capture(*model.rope(), model.config().num_hidden_layers);
  ForwardOptions fo;
  fo.last_only = true;
  fo.observer = &capture;
  auto piece = torch::tensor(std::vector<int64_t>(ids.end() - w, ids.end()), torch::kInt64).view({1, w});
  WindowQueries out;
  out.logits = model.forward(piece, cache, fo).view({-1});
  out.q = capture.take();
  out.window = w;
  return out;
}

FullWindowPrefill prefill_full_with_window_queries(LlamaModel& model, const std::vector<int64_t>& ids, int64_t window,
                                                   int64_t capacity, int64_t chunk) {
  FullWindowPrefill out;
  const double t0 = monotonic_seconds();
  out.cache = make_full_cache(model, capacity);
  out.window = prefill_with_window_queries(model, *out.cache, ids, window, chunk);
  out.seconds = monotonic_seconds() - t0;
  return out;
}

}  // namespace echokv
