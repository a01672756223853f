// Prepares (once, resumably) what pretraining reads: corpus JSONL, the SentencePiece
// tokenizer trained on it, token caches, and the key word list.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/sentencepiece_tokenizer.h"
#include "train/pretrain_config.h"
#include "train/token_corpus.h"

namespace echokv {

struct PretrainData {
  std::unique_ptr<SentencePieceTokenizer> tokenizer;
  std::string tokenizer_path;
  TokenCorpus train, heldout;
  std::vector<std::string> words;
};

PretrainData prepare_pretrain_data(const PretrainConfig& config);
// The same with only the held-out split tokenized (evaluation of a trained model).
PretrainData prepare_pretrain_data(const PretrainConfig& config, bool heldout_only);

// Trains a SentencePiece BPE model (byte fallback, split digits, identity normalisation,
// whitespace kept) with the library, through the torch-free echokv-spm helper.
void train_sentencepiece(const std::string& input, const std::string& model_path, int64_t vocab_size,
                         int64_t max_sentences, uint64_t seed);

// Path of a sibling executable of the running program (e.g. echokv-spm next to echokv-train).
std::string sibling_executable(const std::string& name);

// A short content hash of a file (FNV-1a 64 over the bytes), hex.
std::string file_fingerprint(const std::string& path);

}  // namespace echokv
