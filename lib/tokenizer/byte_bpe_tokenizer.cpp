#include "tokenizer/byte_bpe_tokenizer.h"

#include <filesystem>
#include <queue>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "tokenizer/utf8.h"

namespace echokv {

namespace {

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const int v = base64_value(c);
    if (v < 0) return false;
    buffer = (buffer << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return true;
}

// GPT-2 bytes_to_unicode: printable bytes keep their code point, the other 68 bytes map to
// U+0100.. in byte order.
struct ByteLevelTables {
  uint32_t byte_to_cp[256];
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteLevelTables() {
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      byte_to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      cp_to_byte[byte_to_cp[b]] = static_cast<uint8_t>(b);
    }
  }
};

const ByteLevelTables& byte_level() {
  static const ByteLevelTables tables;
  return tables;
}

}  // namespace

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  for (unsigned char b : bytes) out += utf8::encode_codepoint(byte_level().byte_to_cp[b]);
  return out;
}

std::string byte_level_to_bytes(const std::string& token, const std::string& source) {
  std::string out;
  std::string_view s(token);
  while (!s.empty()) {
    const size_t n = utf8::valid_char_length(s);
    if (n == 0) fail(source, "vocabulary token is not valid UTF-8");
    uint32_t cp = static_cast<unsigned char>(s[0]);
    if (n > 1) {
      cp = static_cast<unsigned char>(s[0]) & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
      for (size_t i = 1; i < n; ++i) cp = (cp << 6) | (static_cast<unsigned char>(s[i]) & 0x3F);
    }
    auto it = byte_level().cp_to_byte.find(cp);
    if (it == byte_level().cp_to_byte.end())
      fail(source, "token '" + token + "' has a character outside the byte-level alphabet (not a byte-level BPE vocabulary)");
    out += static_cast<char>(it->second);
    s.remove_prefix(n);
  }
  return out;
}

std::vector<std::string> llama3_special_token_names() {
  std::vector<std::string> names = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                                    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>",
                                    "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
                                    "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"};
  for (int i = 3; names.size() < 256; ++i) names.push_back("<|reserved_special_token_" + std::to_string(i) + "|>");
  return names;
}

ByteBpeTokenizer::ByteBpeTokenizer(Spec spec, const std::string& source)
    : spec_(std::move(spec)), source_(source), splitter_(spec_.pattern) {
  // Ids are dense (vocabulary, then specials): a larger one is a broken file, refused before it
  // sizes the id tables below.
  const int64_t bound = static_cast<int64_t>(spec_.vocab.size() + spec_.specials.size());
  int64_t max_id = -1;
  for (const auto& kv : spec_.vocab) max_id = std::max(max_id, kv.second);
  for (const auto& kv : spec_.specials) {
    if (kv.second < 0) fail(source_, "special token '" + kv.first + "' has a negative id");
    max_id = std::max(max_id, kv.second);
  }
  if (max_id >= bound)
    fail(source_, "token id " + std::to_string(max_id) + " is beyond the " + std::to_string(bound) +
                      " tokens the file defines (ids must number the vocabulary and the specials densely)");
  id_to_bytes_.assign(max_id + 1, std::string());
  special_.assign(max_id + 1, false);
  std::vector<bool> used(max_id + 1, false);
  for (const auto& [bytes, id] : spec_.vocab) {
    if (id < 0) fail(source_, "negative token id");
    if (used[id]) fail(source_, "token id " + std::to_string(id) + " is assigned twice");
    used[id] = true;
    id_to_bytes_[id] = bytes;
  }
  for (const auto& [text, id] : spec_.specials) {
    if (used[id] && !special_[id]) fail(source_, "special token '" + text + "' reuses id " + std::to_string(id));
    used[id] = true;
    special_[id] = true;
    id_to_bytes_[id] = text;
    special_by_text_[text] = id;
  }
  for (int b = 0; b < 256; ++b)
    if (!spec_.vocab.count(std::string(1, static_cast<char>(b))))
      fail(source_, "vocabulary lacks single byte " + std::to_string(b) + " (not a byte-level BPE vocabulary)");
}

std::optional<int64_t> ByteBpeTokenizer::pair_rank(std::string_view left, std::string_view right) const {
  if (!spec_.use_merges) {
    std::string merged;
    merged.reserve(left.size() + right.size());
    merged.append(left).append(right);
    auto it = spec_.vocab.find(merged);
    if (it == spec_.vocab.end()) return std::nullopt;
    return it->second;
  }
  auto l = spec_.vocab.find(std::string(left));
  auto r = spec_.vocab.find(std::string(right));
  if (l == spec_.vocab.end() || r == spec_.vocab.end()) return std::nullopt;
  auto it = spec_.merges.find({l->second, r->second});
  if (it == spec_.merges.end()) return std::nullopt;
  return it->second;
}

std::vector<int64_t> ByteBpeTokenizer::encode_piece(std::string_view piece) const {
  if (spec_.ignore_merges) {
    auto it = spec_.vocab.find(std::string(piece));
    if (it != spec_.vocab.end()) return {it->second};
  }
  const int n = static_cast<int>(piece.size());
  struct Part {
    int start, len, prev, next, version;
  };
  std::vector<Part> parts(n);
  for (int i = 0; i < n; ++i) parts[i] = {i, 1, i - 1, i + 1 < n ? i + 1 : -1, 0};
  struct Candidate {
    int64_t rank;
    int left, right, left_version, right_version;
  };
  auto later = [](const Candidate& a, const Candidate& b) { return a.rank != b.rank ? a.rank > b.rank : a.left > b.left; };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> heap(later);
  auto push = [&](int left) {
    if (left < 0) return;
    const int right = parts[left].next;
    if (right < 0) return;
    auto rank = pair_rank(piece.substr(parts[left].start, parts[left].len), piece.substr(parts[right].start, parts[right].len));
    if (rank) heap.push({*rank, left, right, parts[left].version, parts[right].version});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Part& l = parts[c.left];
    Part& r = parts[c.right];
    if (l.version != c.left_version || r.version != c.right_version || l.next != c.right || r.len == 0) continue;
    l.len += r.len;
    l.next = r.next;
    ++l.version;
    if (r.next >= 0) parts[r.next].prev = c.left;
    r.len = 0;
    ++r.version;
    push(l.prev);
    push(c.left);
  }
  std::vector<int64_t> ids;
  for (int i = 0; i >= 0 && i < n; i = parts[i].next) {
    auto it = spec_.vocab.find(std::string(piece.substr(parts[i].start, parts[i].len)));
    if (it == spec_.vocab.end()) fail(source_, "BPE produced a part outside the vocabulary (inconsistent merges)");
    ids.push_back(it->second);
  }
  return ids;
}

std::vector<int64_t> ByteBpeTokenizer::encode(const std::string& raw, bool add_bos) const {
  std::vector<int64_t> ids;
  if (add_bos) {
    auto bos = bos_id();
    if (!bos) fail(source_, "no BOS token '" + spec_.bos_text + "'");
    ids.push_back(*bos);
  }
  const std::string text = utf8::sanitize(raw);  // the regex needs valid UTF-8
  for (std::string_view piece : splitter_.split(text)) {
    std::string key(piece);
    {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      auto it = cache_.find(key);
      if (it != cache_.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        continue;
      }
    }
    auto part = encode_piece(piece);
    ids.insert(ids.end(), part.begin(), part.end());
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() > 200000) cache_.clear();
    cache_.emplace(std::move(key), std::move(part));
  }
  return ids;
}

std::string ByteBpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::string bytes;
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) fail(source_, "decode: id " + std::to_string(id) + " is outside the vocabulary");
    if (special_[id] && skip_special) continue;
    bytes += id_to_bytes_[id];
  }
  return utf8::sanitize(bytes);
}

std::string ByteBpeTokenizer::id_to_piece(int64_t id) const {
  if (id < 0 || id >= vocab_size()) fail(source_, "id " + std::to_string(id) + " is outside the vocabulary");
  return special_[id] ? id_to_bytes_[id] : bytes_to_byte_level(id_to_bytes_[id]);
}

std::optional<int64_t> ByteBpeTokenizer::piece_to_id(const std::string& piece) const {
  if (auto s = special_id(piece)) return s;
  try {
    auto it = spec_.vocab.find(byte_level_to_bytes(piece, source_));
    if (it != spec_.vocab.end()) return it->second;
  } catch (const Error&) {
  }
  return std::nullopt;
}

std::optional<int64_t> ByteBpeTokenizer::special_id(const std::string& text) const {
  auto it = special_by_text_.find(text);
  return it == special_by_text_.end() ? std::nullopt : std::optional<int64_t>(it->second);
}

bool ByteBpeTokenizer::is_special(int64_t id) const { return id >= 0 && id < vocab_size() && special_[id]; }

std::unique_ptr<ByteBpeTokenizer> ByteBpeTokenizer::load_tiktoken(const std::string& path) {
  Spec spec;
  spec.kind = "tiktoken";
  std::istringstream in(read_text_file(path));
  std::string line, decoded;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || !base64_decode(std::string_view(line).substr(0, space), decoded))
      fail(path, "line " + std::to_string(line_no) + " is not '<base64> <rank>' (not a tiktoken file?)");
    int64_t rank;
    try {
      rank = std::stoll(line.substr(space + 1));
    } catch (const std::exception&) {
      fail(path, "line " + std::to_string(line_no) + ": rank is not an integer");
    }
    if (!spec.vocab.emplace(decoded, rank).second)
      fail(path, "line " + std::to_string(line_no) + ": duplicate token bytes");
  }
  if (spec.vocab.empty()) fail(path, "empty tiktoken file");
  if (spec.vocab.size() == 128000) {  // Llama 3's vocabulary: its special tokens follow
    auto names = llama3_special_token_names();
    for (size_t i = 0; i < names.size(); ++i) spec.specials.push_back({names[i], 128000 + static_cast<int64_t>(i)});
  }
  return std::make_unique<ByteBpeTokenizer>(std::move(spec), path);
}

namespace {

std::string token_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

// Finds the split regex and whether the pre-tokenizer is byte-level.
// Real tokenizers nest Sequence once or twice; a deep nesting is a hostile file (it once cost
// quadratic copies and, at 100k levels, the stack).
constexpr int kMaxPreTokenizerDepth = 16;

void read_pre_tokenizer(const nlohmann::json& pt, std::string& pattern, bool& byte_level, const std::string& path,
                        int depth = 0) {
  if (pt.is_null()) return;
  if (!pt.is_object()) fail(path, "a pre-tokenizer is not an object");
  if (depth > kMaxPreTokenizerDepth)
    fail(path, "pre-tokenizer Sequences nest deeper than " + std::to_string(kMaxPreTokenizerDepth) + " levels");
  const auto type_it = pt.find("type");
  const std::string type = type_it != pt.end() && type_it->is_string() ? type_it->get<std::string>() : "";
  if (type == "Sequence") {
    const auto list = pt.find("pretokenizers");
    if (list == pt.end() || !list->is_array()) fail(path, "Sequence pre-tokenizer without a 'pretokenizers' list");
    for (const auto& p : *list) read_pre_tokenizer(p, pattern, byte_level, path, depth + 1);
  } else if (type == "Split") {
    const auto pat = pt.find("pattern");
    if (pat == pt.end() || !pat->is_object() || !pat->contains("Regex") || !(*pat)["Regex"].is_string())
      fail(path, "Split pre-tokenizer without a Regex pattern is not supported");
    pattern = (*pat)["Regex"].get<std::string>();
  } else if (type == "ByteLevel") {
    byte_level = true;
    const auto flag = [&](const char* key, bool fallback) {
      const auto it = pt.find(key);
      if (it == pt.end()) return fallback;
      if (!it->is_boolean()) fail(path, std::string("ByteLevel '") + key + "' is not true / false");
      return it->get<bool>();
    };
    if (flag("use_regex", true) && pattern.empty()) pattern = kGpt2SplitPattern;
    if (flag("add_prefix_space", false)) fail(path, "ByteLevel add_prefix_space=true is not supported");
  } else {
    fail(path, "pre-tokenizer type '" + type + "' is not supported");
  }
}

}  // namespace

std::unique_ptr<ByteBpeTokenizer> ByteBpeTokenizer::load_hf_json(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("not valid JSON: ") + e.what());
  }
  if (!j.contains("model") || j["model"].value("type", "") != "BPE")
    fail(path, "model.type is not BPE (only byte-level BPE tokenizer.json files are supported; use tokenizer.model for SentencePiece models)");
  const auto& model = j["model"];
  Spec spec;
  spec.kind = "hf-byte-bpe";
  spec.pattern.clear();
  bool byte_level = false;
  read_pre_tokenizer(j.value("pre_tokenizer", nlohmann::json()), spec.pattern, byte_level, path);
  if (j.contains("decoder") && j["decoder"].is_object() && j["decoder"].value("type", "") == "ByteLevel") byte_level = true;
  if (!byte_level) fail(path, "not a byte-level BPE tokenizer (no ByteLevel pre-tokenizer/decoder); use tokenizer.model");
  if (spec.pattern.empty()) fail(path, "no pre-tokenizer split pattern found");
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(path, "model.vocab is missing");
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer()) fail(path, "vocab entry '" + it.key() + "' has a non-integer id");
    spec.vocab[byte_level_to_bytes(it.key(), path)] = it.value().get<int64_t>();
  }
  spec.use_merges = true;
  spec.ignore_merges = model.value("ignore_merges", false);
  int64_t rank = 0;
  for (const auto& m : model.value("merges", nlohmann::json::array())) {
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos) fail(path, "merge '" + s + "' is not 'left right'");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      fail(path, "malformed merge entry");
    }
    auto ia = spec.vocab.find(byte_level_to_bytes(a, path));
    auto ib = spec.vocab.find(byte_level_to_bytes(b, path));
    if (ia == spec.vocab.end() || ib == spec.vocab.end()) fail(path, "merge '" + a + " " + b + "' names a token outside the vocabulary");
    spec.merges.emplace(std::make_pair(ia->second, ib->second), rank++);
  }
  const auto added = j.value("added_tokens", nlohmann::json::array());
  if (!added.is_array()) fail(path, "added_tokens is not a list");
  // Ids index tables sized by the largest id: an added token lies inside the vocabulary or
  // just after it (the model's vocabulary then the added tokens, as HF numbers them).
  const int64_t id_bound = static_cast<int64_t>(spec.vocab.size() + added.size());
  for (size_t i = 0; i < added.size(); ++i) {
    const auto& t = added[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("content") || !t["content"].is_string())
      fail(path, where + " has no string 'content'");
    if (!t.contains("id") || !t["id"].is_number_integer()) fail(path, where + " ('" + t["content"].get<std::string>() + "') has no integer 'id'");
    const int64_t id = t["id"].get<int64_t>();
    if (id < 0 || id >= id_bound)
      fail(path, where + " ('" + t["content"].get<std::string>() + "') has id " + std::to_string(id) + " outside [0, " +
                     std::to_string(id_bound) + ") (vocabulary plus added tokens)");
    if (t.contains("special") && !t["special"].is_boolean()) fail(path, where + " 'special' is not true / false");
    if (t.value("special", false)) spec.specials.push_back({t["content"].get<std::string>(), id});
  }
  // BOS/EOS names from tokenizer_config.json beside it, when present.
  const std::string config_path = (std::filesystem::path(path).parent_path() / "tokenizer_config.json").string();
  if (file_exists(config_path)) {
    try {
      auto cfg = nlohmann::json::parse(read_text_file(config_path));
      if (cfg.contains("bos_token") && !token_text(cfg["bos_token"]).empty()) spec.bos_text = token_text(cfg["bos_token"]);
      if (cfg.contains("eos_token") && !token_text(cfg["eos_token"]).empty()) spec.eos_text = token_text(cfg["eos_token"]);
    } catch (const nlohmann::json::exception& e) {
      fail(config_path, std::string("not valid JSON: ") + e.what());
    }
  }
  return std::make_unique<ByteBpeTokenizer>(std::move(spec), path);
}

}  // namespace echokv
