// Subcommands of echokv-bench; each registers itself on the app.
#pragma once
#include <CLI/CLI.hpp>

#include "model/config.h"

namespace echokv {
// A few layers of an 8B-class model's shape (Llama-3-8B / Mistral-7B KV: 8 KV heads x 128,
// 16 query heads, hidden 2048, MLP 5632, vocab 32000): realistic per-layer KV and attention
// costs at a size this machine runs.
inline ModelConfig eight_b_shaped_layers(int64_t layers = 4) {
  ModelConfig c;
  c.num_hidden_layers = layers;
  c.hidden_size = 2048;
  c.num_attention_heads = 16;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  c.intermediate_size = 5632;
  c.vocab_size = 32000;
  return c;
}

void register_model_bench(CLI::App& app, int& threads);
void register_tokenizer_bench(CLI::App& app);
void register_train_step_bench(CLI::App& app, int& threads);
void register_echo_train_bench(CLI::App& app, int& threads);
void register_echo_decode_bench(CLI::App& app, int& threads);
void register_kvzip_decode_bench(CLI::App& app, int& threads);
void register_echo_switch_bench(CLI::App& app, int& threads);
}  // namespace echokv
