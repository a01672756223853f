// One process per output folder: a run (evaluation, training, analysis) holds an exclusive
// flock on FOLDER/.echokv.lock for its lifetime, with its pid written inside. A second run on
// the same folder gets one clear error naming the folder and the holder's pid; a lock file left
// by a dead process (the kernel drops a dead holder's flock) is taken over with a message.
#pragma once
#include <string>

namespace echokv {

class RunLock {
 public:
  // Creates `folder` if needed. `what`: the run, for messages ("evaluation", "training").
  RunLock(const std::string& folder, const std::string& what);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  const std::string& path() const { return path_; }
  // The pid the lock file named when this run took it over from a dead process (0: none).
  long taken_over_from() const { return stale_pid_; }

 private:
  std::string path_;
  int fd_ = -1;
  long stale_pid_ = 0;
};

}  // namespace echokv
