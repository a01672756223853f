// Builds the testbed's English corpus from text that Debian packages install (dictd
// dictionaries: GCIDE, WordNet, FOLDOC, Jargon; fortunes), cleaned of dictionary markup and
// grouped into documents. A fixed held-out split: every `heldout_every`-th document.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace echokv {

struct CorpusSource {
  std::string name;
  std::string path;    // .dict.dz / .dict (dictd) or a fortune file or a folder of them
  std::string format;  // "dictd" | "fortune" | "text"
  std::string package;  // the Debian package that installs it ("" if none): recorded in the lock
};

struct CorpusOptions {
  std::vector<CorpusSource> sources;
  int64_t document_chars = 2000;  // paragraphs are grouped into documents of about this size
  int64_t heldout_every = 50;
};

struct CorpusStats {
  int64_t train_documents = 0, heldout_documents = 0, train_chars = 0, heldout_chars = 0;
};

// Writes <dir>/train.jsonl, <dir>/heldout.jsonl ({"source", "text"} per line) and
// <dir>/tokenizer_input.txt (training paragraphs, one per line). Atomic per file.
CorpusStats build_corpus(const CorpusOptions& options, const std::string& dir);

// The files a source reads, in the order it reads them (a folder: its regular files sorted,
// fortune index files .dat/.u8 left out). Errors name the path when it does not exist.
std::vector<std::string> corpus_source_files(const CorpusSource& source);


// Cleans one dictd/fortune paragraph: drops [1913 Webster]-style source tags, \pron\ marks and
// {braces}, collapses whitespace.
std::string clean_paragraph(const std::string& paragraph);

}  // namespace echokv
