// File helpers: whole-file reads and atomic writes (temp file + rename), so a crash never
// leaves a half-written output behind.
#pragma once
#include <functional>
#include <string>

namespace echokv {

std::string read_text_file(const std::string& path);

// Writes via `<path>.tmp.<pid>` then renames over `path`. `write` gets the temp path.
void write_file_atomic(const std::string& path, const std::function<void(const std::string&)>& write);
void write_text_atomic(const std::string& path, const std::string& text);

bool file_exists(const std::string& path);
std::string join_path(const std::string& dir, const std::string& name);

}  // namespace echokv
