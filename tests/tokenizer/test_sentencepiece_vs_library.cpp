// Differential test: the native SentencePiece reader against the SentencePiece library
// (echokv-spm, a separate process without LibTorch) on thousands of generated strings.
#include <array>
#include <cstdio>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/files.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

std::string helper() { return std::string(ECHOKV_BINARY_DIR) + "/bin/echokv-spm"; }

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 65536> buf{};
  while (fgets(buf.data(), buf.size(), p)) out += buf.data();
  EXPECT_EQ(pclose(p), 0) << cmd;
  return out;
}

// Strings mixing the hard cases: space runs, tabs/newlines, digits, punctuation, accents,
// Cyrillic, CJK, emoji, Khmer, control-token and user-defined-symbol text.
std::vector<std::string> generated_texts(size_t count, uint32_t seed) {
  const std::vector<std::string> atoms = {
      "the", " ", "  ", "   ", "\n", "\t", "\n\n", "Hello", "world", "1", "23", "456", "7890", ".", ",", "!", "?",
      "'s", "don't", "é", "ü", "ñ", "Füh", "Привет", "мир", "日本語", "中文", "한국어", "😀", "👍🏽", "ខ្មែរ", "[INST]",
      "[/INST]", "[REFERENCE_DOC_3]", "<s>", "</s>", "<unk>", "▁", "__init__", "http://x.y/z?a=1", "\u00a0", "ℌ",
      "ﬁ", "Ω", "∑", "\r\n", "a", "b", "c", "xyz", "ing", "tion", "Q", "Z", "@", "#", "$", "%", "^", "&", "*"};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, atoms.size() - 1), len(1, 12);
  std::vector<std::string> out;
  for (size_t i = 0; i < count; ++i) {
    std::string s;
    const size_t n = len(rng);
    for (size_t k = 0; k < n; ++k) s += atoms[pick(rng)];
    out.push_back(s);
  }
  return out;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

// Encodings must equal the library's ids; decodings of those ids must equal the library's
// decoding (not always the input: SentencePiece maps a literal U+2581 to a space).
void compare_with_library(const std::string& model_path, const std::vector<std::string>& texts) {
  TempDir tmp;
  {
    std::ofstream f(tmp.file("in.jsonl"));
    for (const auto& t : texts) f << nlohmann::json(t).dump() << "\n";
  }
  const auto encoded = lines_of(run(helper() + " encode --model " + model_path + " < " + tmp.file("in.jsonl")));
  ASSERT_EQ(encoded.size(), texts.size());
  {
    std::ofstream f(tmp.file("ids.jsonl"));
    for (const auto& line : encoded) f << line << "\n";
  }
  const auto decoded = lines_of(run(helper() + " decode --model " + model_path + " < " + tmp.file("ids.jsonl")));
  ASSERT_EQ(decoded.size(), texts.size());
  auto native = SentencePieceTokenizer::load(model_path);
  size_t encode_mismatches = 0, decode_mismatches = 0, round_trips = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto want = nlohmann::json::parse(encoded[i]).get<std::vector<int64_t>>();
    const auto got = native->encode(texts[i]);
    if (got != want && ++encode_mismatches <= 5)
      ADD_FAILURE() << model_path << ": encode differs for " << nlohmann::json(texts[i]).dump();
    const std::string library_text = nlohmann::json::parse(decoded[i]).get<std::string>();
    if (native->decode(want) != library_text && ++decode_mismatches <= 5)
      ADD_FAILURE() << model_path << ": decode differs for " << nlohmann::json(texts[i]).dump();
    round_trips += native->decode(got) == texts[i];
  }
  EXPECT_EQ(encode_mismatches, 0u);
  EXPECT_EQ(decode_mismatches, 0u);
  // A lossless model (byte fallback, no whitespace collapsing) round-trips every input
  // except those containing a literal U+2581.
  if (native->model().byte_fallback && !native->model().remove_extra_whitespaces) {
    size_t with_meta_space = 0;
    for (const auto& t : texts) with_meta_space += t.find("\xE2\x96\x81") != std::string::npos;
    EXPECT_GE(round_trips, texts.size() - with_meta_space);
  }
}

TEST(SentencePieceVsLibrary, Llama2AndMistralOnGeneratedText) {
  auto texts = generated_texts(1500, 17);
  compare_with_library(require_fixture("fixtures/tokenizers/llama2/tokenizer.model"), texts);
  compare_with_library(require_fixture("fixtures/tokenizers/mistral-v3/tokenizer.model"), texts);
}

// Models trained here (BPE and unigram, with and without byte fallback / whitespace
// collapsing) exercise the options the real models leave at one value.
TEST(SentencePieceVsLibrary, FreshlyTrainedBpeAndUnigramModels) {
  TempDir tmp;
  {
    std::ofstream corpus(tmp.file("corpus.txt"));
    for (const auto& t : generated_texts(4000, 3)) {
      std::string line = t;
      std::replace(line.begin(), line.end(), '\n', ' ');
      std::replace(line.begin(), line.end(), '\r', ' ');
      corpus << line << "\n";
    }
  }
  auto texts = generated_texts(500, 99);
  struct Variant {
    const char* name;
    const char* flags;
  };
  for (const Variant& v : {Variant{"bpe_bytes", "--model_type=bpe --byte_fallback=true --split_digits=true "
                                                "--normalization_rule_name=identity --remove_extra_whitespaces=false"},
                           Variant{"unigram_bytes", "--model_type=unigram --byte_fallback=true "
                                                    "--normalization_rule_name=identity"},
                           Variant{"bpe_plain", "--model_type=bpe --normalization_rule_name=identity "
                                                "--user_defined_symbols=[INST],xyz"}}) {
    const std::string prefix = tmp.file(v.name);
    run(helper() + " train -- --input=" + tmp.file("corpus.txt") + " --model_prefix=" + prefix +
        " --vocab_size=400 --num_threads=1 --minloglevel=2 --character_coverage=0.98 " + v.flags + " 2>/dev/null");
    SCOPED_TRACE(v.name);
    compare_with_library(prefix + ".model", texts);
  }
}

}  // namespace
