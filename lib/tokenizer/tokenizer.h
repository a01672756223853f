// Text <-> token ids. Implementations: SentencePiece models (Llama 2, Mistral, the testbed
// model) and byte-level BPE (Llama 3: tiktoken file or HF tokenizer.json).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace echokv {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Ordinary text; special-token strings inside `text` are treated as plain text (control
  // tokens are inserted by id, never parsed from user text).
  virtual std::vector<int64_t> encode(const std::string& text, bool add_bos = false) const = 0;
  // Concatenated text of the ids. skip_special drops control/special tokens.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const = 0;

  virtual int64_t vocab_size() const = 0;
  virtual std::string id_to_piece(int64_t id) const = 0;
  virtual std::optional<int64_t> piece_to_id(const std::string& piece) const = 0;
  // Special/control token by its text, e.g. "<|eot_id|>", "[INST]", "</s>".
  virtual std::optional<int64_t> special_id(const std::string& text) const = 0;
  virtual bool is_special(int64_t id) const = 0;

  virtual std::optional<int64_t> bos_id() const = 0;
  virtual std::optional<int64_t> eos_id() const = 0;
  // A short name of the format, e.g. "sentencepiece-bpe", "tiktoken", "hf-byte-bpe".
  virtual std::string kind() const = 0;
};

// Loads a tokenizer file (tokenizer.model in SentencePiece or tiktoken format, or
// tokenizer.json) or finds one in a model folder. Errors name what was tried.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace echokv
