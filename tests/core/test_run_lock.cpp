// One process per output folder: a second holder is refused with the folder and the holder's
// pid; a lock file left by a dead process is taken over; a clean exit leaves nothing stale.
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "core/files.h"
#include "core/run_lock.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

TEST(RunLock, ASecondRunOnTheFolderIsRefusedNamingTheHolder) {
  TempDir tmp;
  const std::string folder = tmp.file("out");
  {
    RunLock first(folder, "evaluation");
    EXPECT_EQ(first.taken_over_from(), 0);
    const auto message = error_of([&] { RunLock second(folder, "evaluation"); });
    EXPECT_NE(message.find(folder), std::string::npos) << message;
    EXPECT_NE(message.find("another evaluation (pid " + std::to_string(::getpid()) + ")"), std::string::npos) << message;
  }
  RunLock again(folder, "evaluation");  // released at the end of the first run's scope
  EXPECT_EQ(again.taken_over_from(), 0);  // a clean exit leaves no pid behind
}

TEST(RunLock, ALockLeftByADeadProcessIsTakenOver) {
  TempDir tmp;
  const std::string folder = tmp.file("work");
  const pid_t child = ::fork();
  if (child == 0) {  // takes the lock and dies without releasing it (as kill -9 would)
    RunLock held(folder, "training");
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  RunLock lock(folder, "training");
  EXPECT_EQ(lock.taken_over_from(), static_cast<long>(child));
  EXPECT_EQ(read_text_file(lock.path()), std::to_string(::getpid()) + "\n");
}
