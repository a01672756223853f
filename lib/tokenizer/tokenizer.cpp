#include "tokenizer/tokenizer.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "tokenizer/byte_bpe_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"

namespace echokv {

namespace {

// tiktoken files are text lines "<base64> <rank>"; SentencePiece models are protobuf.
bool looks_like_tiktoken(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  if (!std::getline(in, line)) return false;
  const size_t space = line.find(' ');
  if (space == std::string::npos || space == 0 || space + 1 >= line.size()) return false;
  for (size_t i = 0; i < space; ++i) {
    const char c = line[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=')) return false;
  }
  for (size_t i = space + 1; i < line.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(line[i])) && line[i] != '\r') return false;
  return true;
}

std::unique_ptr<Tokenizer> load_file(const std::string& path) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) return ByteBpeTokenizer::load_hf_json(path);
  if (looks_like_tiktoken(path)) return ByteBpeTokenizer::load_tiktoken(path);
  return SentencePieceTokenizer::load(path);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) fail(path, "tokenizer path does not exist");
  if (!fs::is_directory(path)) return load_file(path);
  // Preference: the model's own SentencePiece/tiktoken file, then a byte-level tokenizer.json,
  // then Meta's original/ folder.
  std::string errors;
  for (const char* name : {"tokenizer.model", "tokenizer.json", "original/tokenizer.model"}) {
    const std::string candidate = (fs::path(path) / name).string();
    if (!fs::exists(candidate)) continue;
    try {
      return load_file(candidate);
    } catch (const Error& e) {
      errors += std::string("; ") + e.what();
    }
  }
  fail(path, "no usable tokenizer (tried tokenizer.model, tokenizer.json, original/tokenizer.model" +
                 (errors.empty() ? std::string(": none present") : errors) + ")");
}

}  // namespace echokv
