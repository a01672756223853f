#include "train/corpus.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"

namespace echokv {

namespace {

std::string read_maybe_gzip(const std::string& path) {
  if (path.size() > 3 && (path.compare(path.size() - 3, 3, ".dz") == 0 || path.compare(path.size() - 3, 3, ".gz") == 0)) {
    const std::string cmd = "gzip -dc '" + path + "'";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) fail(path, "cannot run gzip");
    std::string out;
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    if (pclose(p) != 0) fail(path, "gzip could not decompress the file");
    return out;
  }
  return read_text_file(path);
}

std::vector<std::string> split_paragraphs(const std::string& text, bool fortune) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line, current;
  auto flush = [&]() {
    std::string cleaned = clean_paragraph(current);
    if (cleaned.size() >= 20) out.push_back(cleaned);
    current.clear();
  };
  while (std::getline(in, line)) {
    const bool separator = fortune ? line == "%" : line.find_first_not_of(" \t\r") == std::string::npos;
    if (separator) {
      flush();
      continue;
    }
    current += line;
    current += '\n';
  }
  flush();
  return out;
}

}  // namespace

std::vector<std::string> corpus_source_files(const CorpusSource& s) {
  namespace fs = std::filesystem;
  if (!fs::exists(s.path)) fail(s.path, "corpus source '" + s.name + "' does not exist (is its Debian package installed?)");
  if (!fs::is_directory(s.path)) return {s.path};
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(s.path)) {
    const std::string p = e.path().string();
    if (!e.is_regular_file() || e.is_symlink()) continue;
    if (p.size() > 4 && (p.compare(p.size() - 4, 4, ".dat") == 0 || p.compare(p.size() - 3, 3, ".u8") == 0)) continue;
    files.push_back(p);
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string clean_paragraph(const std::string& p) {
  std::string out;
  out.reserve(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '[') {  // drop source tags like [1913 Webster], [PJC], [WordNet 1.5]
      const size_t end = p.find(']', i);
      const std::string tag = end == std::string::npos ? "" : p.substr(i + 1, end - i - 1);
      if (tag.find("Webster") != std::string::npos || tag == "PJC" || tag.find("WordNet") != std::string::npos ||
          tag == "Obs." || tag == "R." || tag == "Colloq.") {
        i = end;
        continue;
      }
    }
    if (c == '\\') {  // a pronunciation between backslashes
      const size_t end = p.find('\\', i + 1);
      if (end != std::string::npos && end - i < 60) {
        i = end;
        continue;
      }
    }
    if (c == '{' || c == '}') continue;
    if (c == '\n' || c == '\t' || c == '\r' || c == ' ') {
      if (!out.empty() && out.back() != ' ') out += ' ';
      continue;
    }
    out += c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

CorpusStats build_corpus(const CorpusOptions& options, const std::string& dir) {
  CorpusStats stats;
  std::ostringstream train, heldout, spm_input;
  int64_t doc_index = 0;
  for (const auto& source : options.sources) {
    if (source.format != "dictd" && source.format != "fortune" && source.format != "text")
      fail(source.path, "corpus source format '" + source.format + "' (expected dictd, fortune or text)");
    for (const auto& file : corpus_source_files(source)) {
      auto paragraphs = split_paragraphs(read_maybe_gzip(file), source.format == "fortune");
      std::string doc;
      auto emit = [&]() {
        if (doc.empty()) return;
        const bool held = doc_index++ % options.heldout_every == 0;
        const std::string line = nlohmann::json{{"source", source.name}, {"text", doc}}.dump(
                                     -1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        (held ? heldout : train) << line;
        (held ? stats.heldout_documents : stats.train_documents)++;
        (held ? stats.heldout_chars : stats.train_chars) += static_cast<int64_t>(doc.size());
        doc.clear();
      };
      for (const auto& para : paragraphs) {
        doc += (doc.empty() ? "" : "\n") + para;
        if (static_cast<int64_t>(doc.size()) >= options.document_chars) emit();
      }
      emit();
    }
  }
  // The tokenizer is trained on training documents only, one paragraph per line.
  std::istringstream tin(train.str());
  std::string line;
  while (std::getline(tin, line)) {
    auto text = nlohmann::json::parse(line)["text"].get<std::string>();
    std::istringstream paras(text);
    std::string para;
    while (std::getline(paras, para)) spm_input << para << "\n";
  }
  std::filesystem::create_directories(dir);
  write_text_atomic(join_path(dir, "train.jsonl"), train.str());
  write_text_atomic(join_path(dir, "heldout.jsonl"), heldout.str());
  write_text_atomic(join_path(dir, "tokenizer_input.txt"), spm_input.str());
  return stats;
}

}  // namespace echokv
