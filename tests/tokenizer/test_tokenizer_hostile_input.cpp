// Hostile tokenizer files (issue "Hardening"): each case once crashed, wrote out of bounds or
// ended in a bare library message; now one clear error naming the file and the problem.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/files.h"
#include "tokenizer/byte_bpe_tokenizer.h"
#include "tokenizer/sentencepiece_model.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

SentencePieceModel llama2_with_byte_piece(const std::string& text, int which = 0x41) {
  auto model = SentencePieceModel::load(require_fixture("fixtures/tokenizers/llama2/tokenizer.model"));
  char name[8];
  std::snprintf(name, sizeof name, "<0x%02X>", which);
  for (auto& p : model.pieces)
    if (p.type == SentencePieceModel::PieceType::kByte && p.text == name) {
      p.text = text;
      return model;
    }
  ADD_FAILURE() << "llama2 has no byte piece " << name;
  return model;
}

// Llama 3's pre-tokenizer: a Split on its pattern, then ByteLevel.
nlohmann::json write_byte_level_pre() {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3SplitPattern}}}, {"behavior", "Isolated"}, {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
}

// A byte-level tokenizer.json: the 256 single bytes (ids 0..255), no merges, `added` tokens.
std::string write_byte_level_json(const std::string& dir, const nlohmann::json& added) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[bytes_to_byte_level(std::string(1, static_cast<char>(b)))] = b;
  nlohmann::json j = {
      {"added_tokens", added},
      {"pre_tokenizer", write_byte_level_pre()},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  const std::string path = dir + "/tokenizer.json";
  std::ofstream(path) << j.dump();
  return path;
}

std::string load_error(const std::string& path) {
  return error_of([&] { ByteBpeTokenizer::load_hf_json(path); });
}

}  // namespace

TEST(HostileSentencePiece, AByteFieldThatIsNotTwoHexDigitsIsRefusedNotUsedAsAnIndex) {
  for (const std::string bad : {"<0x-4>", "<0x-F>", "<0xZZ>", "<0x4>>", "<0x 4>"}) {
    const auto message = error_of([&] { SentencePieceTokenizer(llama2_with_byte_piece(bad), "hostile.model"); });
    EXPECT_NE(message.find("hostile.model"), std::string::npos) << bad;
    EXPECT_NE(message.find("malformed byte piece '" + bad + "'"), std::string::npos) << bad << ": " << message;
  }
  // the same byte twice under two spellings (0x4B renamed to a lower-case 0x4A)
  const auto twice = error_of([] { SentencePieceTokenizer(llama2_with_byte_piece("<0x4a>", 0x4B), "hostile.model"); });
  EXPECT_NE(twice.find("byte piece '<0x4a>' appears twice"), std::string::npos) << twice;
  // lower-case hex is read as SentencePiece would write it upper-case: still byte 0x41
  EXPECT_NO_THROW(SentencePieceTokenizer(llama2_with_byte_piece("<0x4a>", 0x4A), "ok.model"));
}

TEST(HostileTokenizerJson, AddedTokensNeedContentAndAnIdInsideTheTokenCount) {
  TempDir tmp;
  const auto good = nlohmann::json::array({{{"id", 256}, {"content", "<|s|>"}, {"special", true}}});
  EXPECT_NO_THROW(ByteBpeTokenizer::load_hf_json(write_byte_level_json(tmp.path(), good)));
  struct Case {
    nlohmann::json added;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {nlohmann::json::array({{{"id", -3}, {"content", "<|s|>"}, {"special", true}}}), "has id -3 outside [0, 257)"},
      {nlohmann::json::array({{{"id", 100000000}, {"content", "<|s|>"}, {"special", true}}}), "has id 100000000 outside"},
      {nlohmann::json::array({{{"content", "<|s|>"}, {"special", true}}}), "added_tokens[0] ('<|s|>') has no integer 'id'"},
      {nlohmann::json::array({{{"id", 256}, {"special", true}}}), "added_tokens[0] has no string 'content'"},
      {nlohmann::json::array({{{"id", "256"}, {"content", "<|s|>"}, {"special", true}}}), "has no integer 'id'"},
      {nlohmann::json::array({{{"id", 256}, {"content", "<|s|>"}, {"special", "yes"}}}), "'special' is not true / false"},
  };
  for (const auto& c : cases) {
    const auto message = load_error(write_byte_level_json(tmp.path(), c.added));
    EXPECT_NE(message.find("tokenizer.json"), std::string::npos) << message;
    EXPECT_NE(message.find(c.expect), std::string::npos) << c.added.dump() << ": " << message;
  }
}

TEST(HostileTiktoken, ARankFarBeyondTheTokenCountIsRefusedBeforeItSizesATable) {
  TempDir tmp;
  const std::string path = tmp.file("hostile.tiktoken");
  {
    std::ofstream out(path);
    for (int b = 0; b < 256; ++b) {
      static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      const unsigned v = static_cast<unsigned>(b);  // one byte -> 4 base64 chars with "=="
      out << alphabet[v >> 2] << alphabet[(v & 3) << 4] << "== " << b << "\n";
    }
    out << "QUJD 100000000\n";  // "ABC" with a rank that would size a 100M-entry table
  }
  const auto message = error_of([&] { ByteBpeTokenizer::load_tiktoken(path); });
  EXPECT_NE(message.find("hostile.tiktoken"), std::string::npos) << message;
  EXPECT_NE(message.find("token id 100000000 is beyond the 257 tokens"), std::string::npos) << message;
}

TEST(HostileTokenizerJson, DeeplyNestedPreTokenizersAreRefusedQuickly) {
  TempDir tmp;
  const std::string path = write_byte_level_json(tmp.path(), nlohmann::json::array());
  auto j = nlohmann::json::parse(read_text_file(path));
  nlohmann::json nested = j["pre_tokenizer"];
  for (int i = 0; i < 10000; ++i) nested = {{"type", "Sequence"}, {"pretokenizers", nlohmann::json::array({nested})}};
  j["pre_tokenizer"] = nested;
  std::ofstream(path) << j.dump();
  const auto message = load_error(path);
  EXPECT_NE(message.find("nest deeper than 16 levels"), std::string::npos) << message;
  // two levels, as real files have, still load
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", nlohmann::json::array({write_byte_level_pre()})}};
  std::ofstream(path) << j.dump();
  EXPECT_NO_THROW(ByteBpeTokenizer::load_hf_json(path));
}
