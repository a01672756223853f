#include "train/pretrain_data.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/error.h"
#include "core/files.h"
#include "io/jsonl.h"
#include "train/corpus.h"
#include "train/corpus_sources.h"

namespace echokv {

std::string sibling_executable(const std::string& name) {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n > 0) {
    buf[n] = '\0';
    const auto candidate = std::filesystem::path(buf).parent_path() / name;
    if (std::filesystem::exists(candidate)) return candidate.string();
  }
  if (const char* env = std::getenv("ECHOKV_BIN_DIR")) {
    const auto candidate = std::filesystem::path(env) / name;
    if (std::filesystem::exists(candidate)) return candidate.string();
  }
  throw Error("cannot find the '" + name + "' executable next to this program (set ECHOKV_BIN_DIR)");
}

std::string file_fingerprint(const std::string& path) {
  const std::string bytes = read_text_file(path);
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char out[17];
  std::snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(h));
  return out;
}

void train_sentencepiece(const std::string& input, const std::string& model_path, int64_t vocab_size,
                         int64_t max_sentences, uint64_t seed) {
  namespace fs = std::filesystem;
  const std::string prefix = model_path.substr(0, model_path.size() - std::string(".model").size()) + ".tmp";
  const std::string cmd = "'" + sibling_executable("echokv-spm") + "' train -- --input='" + input +
                          "' --model_prefix='" + prefix + "' --vocab_size=" + std::to_string(vocab_size) +
                          " --model_type=bpe --byte_fallback=true --split_digits=true"
                          " --normalization_rule_name=identity --remove_extra_whitespaces=false"
                          " --character_coverage=0.9995 --max_sentence_length=16384 --num_threads=2"
                          " --input_sentence_size=" + std::to_string(max_sentences) +
                          " --shuffle_input_sentence=false" +
                          " --minloglevel=1 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string log;
  char buf[4096];
  while (fgets(buf, sizeof(buf), p)) log += buf;
  if (pclose(p) != 0) fail(model_path, "SentencePiece training failed:\n" + log);
  fs::rename(prefix + ".model", model_path);
  fs::remove(prefix + ".vocab");
}

PretrainData prepare_pretrain_data(const PretrainConfig& c) { return prepare_pretrain_data(c, false); }

PretrainData prepare_pretrain_data(const PretrainConfig& c, bool heldout_only) {
  namespace fs = std::filesystem;
  const std::string corpus_dir = join_path(c.work_dir, "corpus");
  check_corpus_sources(c.corpus, join_path(c.work_dir, "corpus-sources.json"));
  if (!file_exists(join_path(corpus_dir, "heldout.jsonl"))) {
    std::cerr << "[prepare] building corpus in " << corpus_dir << "..." << std::endl;
    auto stats = build_corpus(c.corpus, corpus_dir);
    std::cerr << "[prepare] corpus: " << stats.train_documents << " train documents (" << stats.train_chars / 1000000
              << "M chars), " << stats.heldout_documents << " held-out (" << stats.heldout_chars / 1000000 << "M chars)"
              << std::endl;
  }
  PretrainData d;
  d.tokenizer_path = join_path(c.work_dir, "tokenizer.model");
  if (!file_exists(d.tokenizer_path)) {
    std::cerr << "[prepare] training SentencePiece tokenizer (vocab " << c.tokenizer_vocab << ")..." << std::endl;
    train_sentencepiece(join_path(corpus_dir, "tokenizer_input.txt"), d.tokenizer_path, c.tokenizer_vocab,
                        c.tokenizer_sentences, c.seed);
  }
  d.tokenizer = SentencePieceTokenizer::load(d.tokenizer_path);
  if (d.tokenizer->vocab_size() != c.model.vocab_size)
    fail(d.tokenizer_path, "tokenizer has " + std::to_string(d.tokenizer->vocab_size()) + " pieces, config expects " +
                               std::to_string(c.model.vocab_size));
  const std::string fp = file_fingerprint(d.tokenizer_path);
  std::cerr << "[prepare] tokenizing corpus (cached after the first run)..." << std::endl;
  if (!heldout_only) d.train = load_token_corpus(join_path(corpus_dir, "train.jsonl"), *d.tokenizer, fp);
  d.heldout = load_token_corpus(join_path(corpus_dir, "heldout.jsonl"), *d.tokenizer, fp);
  const std::string words_path = join_path(c.work_dir, "words.txt");
  if (!file_exists(words_path)) {
    auto words = corpus_words(read_jsonl_texts(join_path(corpus_dir, "train.jsonl")), 20, 4000);
    std::string text;
    for (const auto& w : words) text += w + "\n";
    write_text_atomic(words_path, text);
  }
  std::istringstream in(read_text_file(words_path));
  for (std::string w; std::getline(in, w);)
    if (!w.empty()) d.words.push_back(w);
  std::cerr << "[prepare] " << d.train.tokens.size() << " train tokens, " << d.heldout.tokens.size()
            << " held-out tokens, " << d.words.size() << " key words" << std::endl;
  return d;
}

}  // namespace echokv
