#include "io/csv.h"

#include "core/error.h"
#include "core/files.h"

namespace echokv {

std::vector<std::map<std::string, std::string>> read_csv(const std::string& path) {
  const std::string text = read_text_file(path);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  size_t line = 1;
  auto end_field = [&] {
    row.push_back(field);
    field.clear();
    field_started = false;
  };
  auto end_row = [&] {
    end_field();
    rows.push_back(std::move(row));
    row.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
      continue;
    }
    if (c == '"' && !field_started) {
      quoted = field_started = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_row();
      ++line;
    } else {
      field.push_back(c);
      field_started = true;
    }
  }
  if (quoted) fail(path, "unclosed quote (line " + std::to_string(line) + ")");
  if (field_started || !row.empty()) end_row();
  if (rows.empty()) fail(path, "empty CSV file (no header)");
  const auto header = rows[0];
  std::vector<std::map<std::string, std::string>> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    if (rows[r].size() == 1 && rows[r][0].empty()) continue;  // blank line
    if (rows[r].size() != header.size())
      fail(path, "row " + std::to_string(r) + " has " + std::to_string(rows[r].size()) + " fields, the header " +
                     std::to_string(header.size()));
    std::map<std::string, std::string> m;
    for (size_t k = 0; k < header.size(); ++k) m[header[k]] = rows[r][k];
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace echokv
