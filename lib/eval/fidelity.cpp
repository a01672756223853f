#include "eval/fidelity.h"

#include <cmath>

#include "core/error.h"

namespace echokv {

void FidelityStats::add(const torch::Tensor& full_logits, const torch::Tensor& method_logits, const std::vector<int64_t>& ids) {
  const auto T = static_cast<int64_t>(ids.size());
  if (full_logits.size(0) != T || method_logits.sizes() != full_logits.sizes())
    throw Error("fidelity: logits shapes do not match the sequence");
  if (T < 2) return;
  auto lf = torch::log_softmax(full_logits.slice(0, 0, T - 1).to(torch::kFloat64), -1);   // [T-1, V]
  auto lm = torch::log_softmax(method_logits.slice(0, 0, T - 1).to(torch::kFloat64), -1);
  auto targets = torch::tensor(std::vector<int64_t>(ids.begin() + 1, ids.end()), torch::kInt64).to(lf.device()).unsqueeze(1);
  nll_full += -lf.gather(1, targets).sum().item<double>();
  nll_method += -lm.gather(1, targets).sum().item<double>();
  kl += (lf.exp() * (lf - lm)).sum().item<double>();
  top1_agree += lf.argmax(-1).eq(lm.argmax(-1)).sum().item<int64_t>();
  tokens += T - 1;
}

void FidelityStats::merge(const FidelityStats& o) {
  tokens += o.tokens;
  nll_full += o.nll_full;
  nll_method += o.nll_method;
  kl += o.kl;
  top1_agree += o.top1_agree;
}

double FidelityStats::ppl_full() const { return tokens ? std::exp(nll_full / tokens) : 0; }
double FidelityStats::ppl_method() const { return tokens ? std::exp(nll_method / tokens) : 0; }

nlohmann::json FidelityStats::to_json() const {
  return {{"tokens", tokens},       {"nll_full_sum", nll_full}, {"nll_method_sum", nll_method},
          {"kl_sum", kl},           {"top1_agree", top1_agree}, {"kl", kl_mean()},
          {"top1", top1()},         {"ppl_full", ppl_full()},   {"ppl", ppl_method()}};
}

FidelityStats FidelityStats::from_json(const nlohmann::json& j) {
  FidelityStats s;
  s.tokens = j.at("tokens").get<int64_t>();
  s.nll_full = j.at("nll_full_sum").get<double>();
  s.nll_method = j.at("nll_method_sum").get<double>();
  s.kl = j.at("kl_sum").get<double>();
  s.top1_agree = j.at("top1_agree").get<int64_t>();
  return s;
}

}  // namespace echokv
