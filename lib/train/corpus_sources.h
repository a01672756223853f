// What the testbed corpus was built from, so it can be rebuilt identically anywhere: each
// source's Debian package, version and a content fingerprint, kept in a lock file beside the
// training state (`<work_dir>/corpus-sources.json`). A machine whose files differ gets one
// clear error naming the source, both versions and both fingerprints, never a silently
// different corpus (and so a model card whose numbers no longer reproduce).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "train/corpus.h"

namespace echokv {

// FNV-1a 64 over each of the source's files (sorted): its file name, a zero byte, its bytes.
std::string corpus_source_fingerprint(const CorpusSource& source);

// The installed version of a Debian package ("" when unknown or not installed).
std::string installed_package_version(const std::string& package);

// {"sources": [{"name", "path", "package", "version", "fingerprint"}, ...]} for `options`.
nlohmann::json describe_corpus_sources(const CorpusOptions& options);

// Writes the lock when it does not exist yet; otherwise checks every source against it and
// throws an Error naming the lock file and the first mismatch.
void check_corpus_sources(const CorpusOptions& options, const std::string& lock_path);

}  // namespace echokv
