// One error type for every user-facing failure: the message names the file and the problem.
#pragma once
#include <stdexcept>
#include <string>

namespace echokv {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// "<path>: <problem>" — the one format every input-validation error uses.
[[noreturn]] inline void fail(const std::string& path, const std::string& problem) {
  throw Error(path + ": " + problem);
}

}  // namespace echokv
