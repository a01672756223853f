#include "core/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace echokv {

namespace {

long read_pid(int fd) {
  char buf[32] = {0};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  return std::strtol(buf, nullptr, 10);
}

}  // namespace

RunLock::RunLock(const std::string& folder, const std::string& what) {
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  path_ = (std::filesystem::path(folder) / ".echokv.lock").string();
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path_, "cannot open the run lock: " + std::string(std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const long holder = read_pid(fd_);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      fail(folder, "another " + what + " (pid " + std::to_string(holder) + ") is using this folder (lock " + path_ +
                       "); wait for it to finish or stop it, or use another folder");
    fail(path_, "cannot lock: " + std::string(std::strerror(err)));
  }
  const long previous = read_pid(fd_);
  if (previous > 0 && previous != static_cast<long>(::getpid())) {
    stale_pid_ = previous;
    std::fprintf(stderr, "[lock] %s: taking over the lock of pid %ld, which is no longer running\n", folder.c_str(), previous);
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()))
    fail(path_, "cannot write the run lock: " + std::string(std::strerror(errno)));
}

RunLock::~RunLock() {
  if (fd_ < 0) return;
  // Empty the pid first, so that no later run mistakes this clean exit for a dead holder.
  if (::ftruncate(fd_, 0) != 0) {
  }
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

}  // namespace echokv
