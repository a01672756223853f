// The testbed corpus is rebuilt from locked sources: a changed source is one clear error, and
// the lock shipped with the testbed agrees with the versions install-deps.sh installs.
#include <fstream>
#include <regex>

#include <gtest/gtest.h>

#include "core/files.h"
#include "test_support.h"
#include "train/corpus_sources.h"
#include "train/pretrain_config.h"

using namespace echokv;
using namespace echokv::testing;

namespace {
void write_file(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }
}  // namespace

TEST(CorpusSources, LockIsWrittenOnceThenAChangedSourceIsNamed) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("fortunes"));
  write_file(dir.file("fortunes/a"), "one\n%\ntwo\n");
  write_file(dir.file("fortunes/b"), "three\n");
  CorpusOptions opt;
  opt.sources = {{"tiny", dir.file("fortunes"), "fortune", ""}};
  const std::string lock = dir.file("corpus-sources.json");
  check_corpus_sources(opt, lock);
  ASSERT_TRUE(file_exists(lock));
  EXPECT_EQ(error_of([&] { check_corpus_sources(opt, lock); }), "");  // same files: accepted
  write_file(dir.file("fortunes/b"), "three!\n");
  const std::string err = error_of([&] { check_corpus_sources(opt, lock); });
  EXPECT_NE(err.find(lock), std::string::npos) << err;
  EXPECT_NE(err.find("'tiny'"), std::string::npos) << err;
  EXPECT_NE(err.find("differs"), std::string::npos) << err;
}

TEST(CorpusSources, FingerprintCoversNamesAndBytesInOrder) {
  TempDir dir;
  write_file(dir.file("a"), "xy");
  const CorpusSource s{"s", dir.file("a"), "text", ""};
  const std::string f1 = corpus_source_fingerprint(s);
  write_file(dir.file("a"), "yx");
  EXPECT_NE(corpus_source_fingerprint(s), f1);
  // FNV-1a 64 of "a\0xy", computed by hand here.
  write_file(dir.file("a"), "xy");
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : std::string("a\0xy", 4)) h = (h ^ c) * 1099511628211ULL;
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  EXPECT_EQ(corpus_source_fingerprint(s), hex);
}

TEST(CorpusSources, ShippedLockMatchesInstallDepsPins) {
  const auto config = PretrainConfig::load(source_dir() + "/configs/testbed/tb8.yaml");
  const std::string lock_path = config.work_dir + "/corpus-sources.json";  // work_dir: beside the config
  ASSERT_TRUE(file_exists(lock_path)) << lock_path;
  const auto lock = nlohmann::json::parse(read_text_file(lock_path));
  const std::string script = read_text_file(source_dir() + "/scripts/install-deps.sh");
  ASSERT_EQ(lock["sources"].size(), config.corpus.sources.size());
  for (const auto& s : lock["sources"]) {
    const std::string pin = s["package"].get<std::string>() + "=" + s["version"].get<std::string>();
    EXPECT_TRUE(std::regex_search(script, std::regex("[ (]" + std::regex_replace(pin, std::regex(R"([.+])"), R"(\$&)") +
                                                      "[ )\n]")))
        << "install-deps.sh does not pin " << pin;
  }
}
