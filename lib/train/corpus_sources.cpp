#include "train/corpus_sources.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/files.h"

namespace echokv {

namespace {

void fnv_mix(uint64_t& h, const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 1099511628211ULL;
  }
}

std::string hex64(uint64_t h) {
  char out[17];
  std::snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(h));
  return out;
}

bool safe_package_name(const std::string& p) {
  if (p.empty()) return false;
  for (char c : p)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '+' && c != '.') return false;
  return true;
}

}  // namespace

std::string corpus_source_fingerprint(const CorpusSource& source) {
  uint64_t h = 1469598103934665603ULL;
  std::vector<char> buf(1 << 16);
  for (const auto& file : corpus_source_files(source)) {
    const std::string name = std::filesystem::path(file).filename().string();
    fnv_mix(h, name.c_str(), name.size() + 1);
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(file, "cannot read corpus source file");
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      fnv_mix(h, buf.data(), static_cast<size_t>(in.gcount()));
    }
  }
  return hex64(h);
}

std::string installed_package_version(const std::string& package) {
  if (!safe_package_name(package)) return "";
  const std::string cmd = "dpkg-query -W -f='${Version}' " + package + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof(buf), p)) out += buf;
  return pclose(p) == 0 ? out : "";
}

nlohmann::json describe_corpus_sources(const CorpusOptions& options) {
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& s : options.sources)
    sources.push_back({{"name", s.name},
                       {"path", s.path},
                       {"package", s.package},
                       {"version", s.package.empty() ? "" : installed_package_version(s.package)},
                       {"fingerprint", corpus_source_fingerprint(s)}});
  return {{"sources", sources}};
}

void check_corpus_sources(const CorpusOptions& options, const std::string& lock_path) {
  const auto now = describe_corpus_sources(options);
  if (!file_exists(lock_path)) {
    write_text_atomic(lock_path, now.dump(2) + "\n");
    return;
  }
  nlohmann::json lock;
  try {
    lock = nlohmann::json::parse(read_text_file(lock_path));
  } catch (const nlohmann::json::exception& e) {
    fail(lock_path, std::string("not valid JSON: ") + e.what());
  }
  if (!lock.is_object() || !lock.contains("sources") || !lock["sources"].is_array())
    fail(lock_path, "expected {\"sources\": [...]}");
  const auto& want = lock["sources"];
  if (want.size() != now["sources"].size())
    fail(lock_path, "records " + std::to_string(want.size()) + " corpus sources, the config has " +
                        std::to_string(now["sources"].size()));
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& w = want[i];
    const auto& h = now["sources"][i];
    const auto field = [&](const nlohmann::json& j, const char* k) {
      return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string("?");
    };
    if (field(w, "name") != field(h, "name"))
      fail(lock_path, "source " + std::to_string(i) + " is '" + field(w, "name") + "', the config says '" +
                          field(h, "name") + "'");
    if (field(w, "fingerprint") != field(h, "fingerprint"))
      fail(lock_path, "corpus source '" + field(h, "name") + "' (" + field(h, "path") +
                          ") differs from the one this training state was built from: recorded " + field(w, "package") +
                          " " + field(w, "version") + " (fingerprint " + field(w, "fingerprint") + "), found " +
                          field(h, "package") + " " + (field(h, "version").empty() ? "(not installed)" : field(h, "version")) +
                          " (fingerprint " + field(h, "fingerprint") +
                          "); install the recorded versions (scripts/install-deps.sh does)");
  }
}

}  // namespace echokv
