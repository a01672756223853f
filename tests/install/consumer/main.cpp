// Uses the installed library the way a user's program would: a random model, one forward
// through the full cache, incremental decode equal to the one-shot logits.
#include <iostream>

#include "cache/cache_factory.h"
#include "core/torch_compat.h"
#include "model/random_model.h"

int main() {
  echokv::ModelConfig c;
  c.vocab_size = 64;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 64;
  auto model = echokv::make_random_model(c, 3);
  torch::NoGradGuard no_grad;
  auto ids = torch::arange(10, torch::kInt64).view({1, 10});
  auto full = model->forward(ids, *echokv::make_full_cache(*model, 10));
  auto cache = echokv::make_full_cache(*model, 10);
  auto first = model->forward(ids.narrow(1, 0, 9), *cache);
  auto last = model->forward(ids.narrow(1, 9, 1), *cache);
  const double diff = (torch::cat({first, last}, 1) - full).abs().max().item<double>();
  std::cout << "consumer: LibTorch " << echokv::compat::torch_version() << ", max |diff| " << diff << std::endl;
  return diff <= 1e-4 ? 0 : 1;
}
