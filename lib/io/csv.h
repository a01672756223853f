// CSV as pandas' DataFrame.to_csv writes it (RFC 4180: fields with a comma, quote or line
// break are quoted, quotes doubled): the header row names the columns.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace echokv {

// Rows as column -> text; throws naming the file and row on a malformed file (an unclosed
// quote, a row with another field count than the header).
std::vector<std::map<std::string, std::string>> read_csv(const std::string& path);

}  // namespace echokv
