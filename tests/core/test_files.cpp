// Atomic writes: the new content replaces the old whole, a failed write leaves the old file
// and no temporary, and temporaries a killed writer left behind are cleaned on the next write.
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/files.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

TEST(AtomicWrite, ReplacesWholeAndAFailedWriteLeavesTheOldFile) {
  TempDir tmp;
  const std::string path = tmp.file("sub/report.md");
  write_text_atomic(path, "first\n");
  EXPECT_EQ(read_text_file(path), "first\n");
  write_text_atomic(path, "second\n");
  EXPECT_EQ(read_text_file(path), "second\n");
  EXPECT_THROW(write_file_atomic(path, [](const std::string& t) {
                 std::ofstream(t) << "half";
                 throw Error("disk full");
               }),
               Error);
  EXPECT_EQ(read_text_file(path), "second\n");
  EXPECT_FALSE(file_exists(path + ".tmp." + std::to_string(::getpid())));
}

TEST(AtomicWrite, TemporariesOfDeadWritersAreCleanedOnTheNextWrite) {
  TempDir tmp;
  const std::string path = tmp.file("metrics.json");
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);  // a pid that no longer runs
  const std::string stale = path + ".tmp." + std::to_string(child);
  std::ofstream(stale) << "left by a killed writer";
  const std::string live = path + ".tmp.1";  // pid 1 runs: another writer's file is left alone
  std::ofstream(live) << "another writer";
  write_text_atomic(path, "{}\n");
  EXPECT_FALSE(file_exists(stale));
  EXPECT_TRUE(file_exists(live));
  EXPECT_EQ(read_text_file(path), "{}\n");
}
