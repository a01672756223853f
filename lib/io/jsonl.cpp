#include "io/jsonl.h"

#include <cstdio>
#include <fstream>
#include <unistd.h>

#include "core/error.h"

namespace echokv {

namespace {

// Calls visit(record, line number) for every non-blank line.
template <typename Visit>
void for_each_jsonl_record(const std::string& path, bool tolerate_torn_tail, Visit&& visit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open JSONL file");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t start = 0, line_no = 0;
  while (start < content.size()) {
    size_t end = content.find('\n', start);
    const bool last_unterminated = end == std::string::npos;
    if (last_unterminated) end = content.size();
    ++line_no;
    std::string line = content.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      if (tolerate_torn_tail && last_unterminated) break;
      fail(path + ":" + std::to_string(line_no), std::string("malformed JSON line: ") + e.what());
    }
    if (!record.is_object()) fail(path + ":" + std::to_string(line_no), "expected a JSON object per line");
    visit(std::move(record), line_no);
  }
}

}  // namespace

std::vector<nlohmann::json> read_jsonl(const std::string& path, bool tolerate_torn_tail) {
  std::vector<nlohmann::json> out;
  for_each_jsonl_record(path, tolerate_torn_tail, [&](nlohmann::json&& record, size_t) { out.push_back(std::move(record)); });
  return out;
}

std::vector<std::string> read_jsonl_texts(const std::string& path, const std::string& field) {
  std::vector<std::string> out;
  for_each_jsonl_record(path, false, [&](nlohmann::json&& record, size_t line) {
    out.push_back(json_string(record, field, path + ":" + std::to_string(line)));
  });
  return out;
}

void append_jsonl(const std::string& path, const nlohmann::json& record) {
  FILE* f = std::fopen(path.c_str(), "ab");
  if (!f) fail(path, "cannot open for appending");
  const std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  const bool ok = std::fwrite(line.data(), 1, line.size(), f) == line.size() && std::fflush(f) == 0;
  if (ok) ::fsync(fileno(f));
  std::fclose(f);
  if (!ok) fail(path, "write failed");
}

std::string json_string(const nlohmann::json& obj, const std::string& field, const std::string& where) {
  auto it = obj.find(field);
  if (it == obj.end()) fail(where, "missing field '" + field + "'");
  if (!it->is_string()) fail(where, "field '" + field + "' must be a string");
  return it->get<std::string>();
}

std::vector<std::string> json_string_list(const nlohmann::json& obj, const std::string& field,
                                          const std::string& where) {
  auto it = obj.find(field);
  if (it == obj.end()) fail(where, "missing field '" + field + "'");
  if (it->is_null()) return {};
  if (!it->is_array()) fail(where, "field '" + field + "' must be a list of strings");
  std::vector<std::string> out;
  for (const auto& v : *it) {
    if (!v.is_string()) fail(where, "field '" + field + "' must be a list of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace echokv
