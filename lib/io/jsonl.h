// JSON Lines: reading with errors that name the file and line, and appending records that
// survive a crash (each line is written whole and flushed; a torn last line from a crash is
// detected and ignored on resume).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace echokv {

// Every non-empty line parsed as a JSON object; a malformed line throws
// "<path>:<line>: ...". With tolerate_torn_tail, a malformed *last* line without a trailing
// newline (an interrupted append) is skipped instead.
std::vector<nlohmann::json> read_jsonl(const std::string& path, bool tolerate_torn_tail = false);

// The string field `field` of every record, in order ("<path>:<line>: ..." when a record
// lacks it). Corpora, calibration text and fidelity text all read this way.
std::vector<std::string> read_jsonl_texts(const std::string& path, const std::string& field = "text");

// Appends one record as a line and flushes it to disk.
void append_jsonl(const std::string& path, const nlohmann::json& record);

// Typed field access with "<where>: field 'name' ..." errors.
std::string json_string(const nlohmann::json& obj, const std::string& field, const std::string& where);
std::vector<std::string> json_string_list(const nlohmann::json& obj, const std::string& field,
                                          const std::string& where);

}  // namespace echokv
