// HF tokenizer.json (byte-level BPE with merges) gives the same ids as the tiktoken file.
// The tokenizer.json is built here from the tiktoken ranks the way HF's converter does.
#include <fstream>
#include <unordered_map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/files.h"
#include "tokenizer/byte_bpe_tokenizer.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

std::unordered_map<std::string, int64_t> read_ranks(const std::string& path) {
  // Decode through the tokenizer itself: id_to_piece gives the byte-level string.
  auto tok = ByteBpeTokenizer::load_tiktoken(path);
  std::unordered_map<std::string, int64_t> ranks;
  for (int64_t id = 0; id < 128000; ++id) ranks[byte_level_to_bytes(tok->id_to_piece(id), "test")] = id;
  return ranks;
}

std::string write_tokenizer_json(const std::string& dir, bool ignore_merges) {
  static std::unordered_map<std::string, int64_t> ranks =
      read_ranks(require_fixture("fixtures/tokenizers/llama3/tokenizer.model"));
  static std::vector<std::pair<int64_t, std::pair<std::string, std::string>>> merges = [] {
    // Every split of a token whose halves are tokens, ordered by the result's rank, then by
    // the halves' ranks (as HF's tiktoken converter does).
    std::vector<std::tuple<int64_t, int64_t, int64_t, std::string, std::string>> all;
    for (const auto& [bytes, rank] : ranks) {
      for (size_t cut = 1; cut < bytes.size(); ++cut) {
        auto l = ranks.find(bytes.substr(0, cut));
        auto r = ranks.find(bytes.substr(cut));
        if (l != ranks.end() && r != ranks.end()) all.emplace_back(rank, l->second, r->second, l->first, r->first);
      }
    }
    std::sort(all.begin(), all.end());
    std::vector<std::pair<int64_t, std::pair<std::string, std::string>>> out;
    for (auto& [rank, lr, rr, l, r] : all) out.push_back({rank, {l, r}});
    return out;
  }();
  nlohmann::json vocab = nlohmann::json::object();
  for (const auto& [bytes, rank] : ranks) vocab[bytes_to_byte_level(bytes)] = rank;
  nlohmann::json merge_list = nlohmann::json::array();
  for (const auto& m : merges)
    merge_list.push_back({bytes_to_byte_level(m.second.first), bytes_to_byte_level(m.second.second)});
  nlohmann::json added = nlohmann::json::array();
  auto names = llama3_special_token_names();
  for (size_t i = 0; i < names.size(); ++i)
    added.push_back({{"id", 128000 + i}, {"content", names[i]}, {"special", true}});
  nlohmann::json j = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3SplitPattern}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}, {"ignore_merges", ignore_merges}}}};
  const std::string path = dir + "/tokenizer.json";
  std::ofstream(path) << j.dump();
  return path;
}

TEST(HfTokenizerJson, SameIdsAsTiktokenOnAllFixtureCases) {
  TempDir tmp;
  auto hf = load_tokenizer(write_tokenizer_json(tmp.path(), true));
  EXPECT_EQ(hf->kind(), "hf-byte-bpe");
  auto expected = nlohmann::json::parse(read_text_file(require_fixture("fixtures/tokenizers/llama3/expected.json")));
  for (const auto& c : expected["cases"]) {
    const std::string text = c["text"].get<std::string>();
    EXPECT_EQ(hf->encode(text), c["ids"].get<std::vector<int64_t>>()) << text;
    EXPECT_EQ(hf->decode(hf->encode(text)), text);
  }
  EXPECT_EQ(hf->special_id("<|eot_id|>"), 128009);
  EXPECT_EQ(hf->encode(" Việt"), (std::vector<int64_t>{101798}));
}

TEST(HfTokenizerJson, IgnoreMergesFlagDecidesWholePieceLookup) {
  TempDir tmp;
  auto strict = load_tokenizer(write_tokenizer_json(tmp.path(), false));
  // Without ignore_merges the merges alone decide: " Việt" is in the vocabulary but merging
  // its bytes in rank order does not reach that token (shared/README.md's example).
  auto merged = strict->encode(" Việt");
  EXPECT_NE(merged, (std::vector<int64_t>{101798}));
  EXPECT_EQ(strict->decode(merged), " Việt");
}

TEST(HfTokenizerJson, NonByteLevelJsonIsRejectedClearly) {
  TempDir tmp;
  std::ofstream(tmp.file("tokenizer.json")) << R"({"model":{"type":"Unigram","vocab":[]}})";
  try {
    load_tokenizer(tmp.file("tokenizer.json"));
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("not BPE"), std::string::npos) << e.what();
  }
}

}  // namespace
