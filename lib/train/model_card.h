// The README.md card shipped with a pretrained model: data, command, budget, and measured
// quality (held-out perplexity, retrieval accuracy by context length, greedy samples).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/llama.h"
#include "tokenizer/tokenizer.h"
#include "train/pretrain_config.h"

namespace echokv {

// Greedy continuations of a few prose prompts (plain text, BOS first).
std::vector<std::pair<std::string, std::string>> greedy_samples(LlamaModel& model, const Tokenizer& tokenizer,
                                                                const std::vector<std::string>& prompts,
                                                                int64_t max_new_tokens);

std::string model_card_markdown(const PretrainConfig& config, const nlohmann::json& eval,
                                const nlohmann::json& summary,
                                const std::vector<std::pair<std::string, std::string>>& samples);

}  // namespace echokv
