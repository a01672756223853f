#include "tokenizer/sentencepiece_tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <queue>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace echokv {

namespace {

// The byte of a piece spelled <0xHH> (HH: two hex digits, as SentencePiece writes them), or -1.
int byte_piece_value(const std::string& text) {
  if (text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>') return -1;
  auto digit = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = digit(text[3]), lo = digit(text[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

}  // namespace

namespace {

constexpr const char* kSpaceSymbol = "\xE2\x96\x81";  // U+2581 '▁'
constexpr float kUnkPenalty = 10.0f;

using PieceType = SentencePieceModel::PieceType;

std::string byte_piece(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
  return buf;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(SentencePieceModel model, const std::string& source)
    : model_(std::move(model)), source_(source) {
  if (!model_.precompiled_charsmap.empty())
    fail(source_, "normalizer '" + model_.normalizer_name +
                      "' uses a precompiled character map, which is not supported; models trained with "
                      "normalization_rule_name=identity (Llama 2, Mistral, this project's) are");
  std::fill(std::begin(byte_piece_id_), std::end(byte_piece_id_), -1);
  min_score_ = std::numeric_limits<float>::max();
  max_score_ = std::numeric_limits<float>::lowest();
  for (size_t i = 0; i < model_.pieces.size(); ++i) {
    const auto& p = model_.pieces[i];
    const int id = static_cast<int>(i);
    const bool segmentable = p.type == PieceType::kNormal || p.type == PieceType::kUserDefined || p.type == PieceType::kUnused;
    auto& table = segmentable ? pieces_ : reserved_;
    if (!table.emplace(std::string_view(p.text), id).second) fail(source_, "duplicate piece '" + p.text + "'");
    if (p.type == PieceType::kUserDefined) user_defined_.push_back(p.text);
    if (p.type == PieceType::kNormal) {
      min_score_ = std::min(min_score_, p.score);
      max_score_ = std::max(max_score_, p.score);
    }
    if (p.type == PieceType::kByte) {
      const int b = byte_piece_value(p.text);
      if (b < 0) fail(source_, "malformed byte piece '" + p.text + "' (expected <0xHH>, two hex digits)");
      if (byte_piece_id_[b] >= 0) fail(source_, "byte piece '" + p.text + "' appears twice");
      byte_piece_id_[b] = id;
    }
  }
  if (model_.byte_fallback)
    for (int b = 0; b < 256; ++b)
      if (byte_piece_id_[b] < 0) fail(source_, "byte_fallback is on but piece " + byte_piece(b) + " is missing");
  std::sort(user_defined_.begin(), user_defined_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::load(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(SentencePieceModel::load(path), path);
}

std::string SentencePieceTokenizer::normalize(const std::string& raw) const {
  // Identity character mapping; invalid UTF-8 bytes become U+FFFD, as the library does.
  const std::string text = utf8::sanitize(raw);
  const std::string space = model_.escape_whitespaces ? kSpaceSymbol : " ";
  std::string_view in(text);
  if (model_.remove_extra_whitespaces) {
    while (!in.empty() && in.front() == ' ') in.remove_prefix(1);
  }
  std::string out;
  if (in.empty()) return out;
  if (model_.add_dummy_prefix && !model_.treat_whitespace_as_suffix) out += space;
  bool prev_space = model_.remove_extra_whitespaces;
  for (char c : in) {
    if (c == ' ') {
      if (model_.remove_extra_whitespaces && prev_space) continue;
      out += space;
      prev_space = true;
    } else {
      out += c;
      prev_space = false;
    }
  }
  if (model_.remove_extra_whitespaces) {
    while (out.size() >= space.size() && out.compare(out.size() - space.size(), space.size(), space) == 0)
      out.resize(out.size() - space.size());
  }
  if (model_.add_dummy_prefix && model_.treat_whitespace_as_suffix) out += space;
  return out;
}

size_t SentencePieceTokenizer::match_user_defined(std::string_view s) const {
  for (const auto& u : user_defined_)
    if (s.size() >= u.size() && s.compare(0, u.size(), u) == 0) return u.size();
  return 0;
}

int SentencePieceTokenizer::lookup(std::string_view piece) const {
  auto it = pieces_.find(piece);
  return it == pieces_.end() ? -1 : it->second;
}

std::vector<SentencePieceTokenizer::Segment> SentencePieceTokenizer::encode_bpe(std::string_view text) const {
  struct Symbol {
    int prev, next;
    std::string_view piece;
    bool frozen;
  };
  struct Pair {
    int left, right;
    float score;
    size_t size;
  };
  // Highest score first; among equals, the leftmost pair.
  auto worse = [](const Pair& a, const Pair& b) { return a.score != b.score ? a.score < b.score : a.left > b.left; };
  std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> agenda(worse);
  std::vector<Symbol> symbols;
  std::unordered_map<std::string, std::pair<std::string_view, std::string_view>> unused_merges;

  // Initial symbols: user-defined pieces whole (frozen), otherwise single characters.
  for (size_t pos = 0; pos < text.size();) {
    size_t len = match_user_defined(text.substr(pos));
    const bool frozen = len > 0;
    if (!frozen) len = std::max<size_t>(1, utf8::valid_char_length(text.substr(pos)));
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, pos + len < text.size() ? index + 1 : -1, text.substr(pos, len), frozen});
    pos += len;
  }
  auto try_pair = [&](int left, int right) {
    if (left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen) return;
    const std::string_view merged(symbols[left].piece.data(), symbols[left].piece.size() + symbols[right].piece.size());
    const int id = lookup(merged);
    if (id < 0) return;
    agenda.push({left, right, model_.pieces[id].score, merged.size()});
    if (model_.pieces[id].type == PieceType::kUnused)
      unused_merges[std::string(merged)] = {symbols[left].piece, symbols[right].piece};
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_pair(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& l = symbols[top.left];
    Symbol& r = symbols[top.right];
    // Stale entry: one side was merged away or changed since this pair was queued.
    if (l.piece.empty() || r.piece.empty() || l.piece.size() + r.piece.size() != top.size || l.next != top.right)
      continue;
    l.piece = std::string_view(l.piece.data(), l.piece.size() + r.piece.size());
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = top.left;
    r.piece = std::string_view();
    try_pair(l.prev, top.left);
    try_pair(top.left, l.next);
  }

  std::vector<Segment> out;
  // UNUSED pieces may be produced by merging but are never emitted: split them back.
  std::function<void(std::string_view)> emit = [&](std::string_view w) {
    const int id = lookup(w);
    if (id >= 0 && model_.pieces[id].type == PieceType::kUnused) {
      auto it = unused_merges.find(std::string(w));
      if (it != unused_merges.end()) {
        emit(it->second.first);
        emit(it->second.second);
        return;
      }
    }
    out.push_back({w, id});
  };
  if (!symbols.empty())
    for (int i = 0; i >= 0; i = symbols[i].next) emit(symbols[i].piece);
  return out;
}

std::vector<SentencePieceTokenizer::Segment> SentencePieceTokenizer::encode_unigram(std::string_view text) const {
  // Viterbi over byte positions on character boundaries. Unknown single characters cost
  // min_score - 10; user-defined pieces score length * max_score - 0.1 (always preferred).
  const size_t n = text.size();
  struct Node {
    float score = std::numeric_limits<float>::lowest();
    size_t start = 0;
    int id = -1;
    bool reached = false;
  };
  std::vector<Node> best(n + 1);
  best[0].score = 0;
  best[0].reached = true;
  size_t max_piece_bytes = 0;
  for (const auto& kv : pieces_) max_piece_bytes = std::max(max_piece_bytes, kv.first.size());
  const float unk_score = min_score_ - kUnkPenalty;
  for (size_t pos = 0; pos < n;) {
    const size_t char_len = std::max<size_t>(1, utf8::valid_char_length(text.substr(pos)));
    if (best[pos].reached) {
      bool single_char_piece = false;
      for (size_t len = char_len; len <= std::min(max_piece_bytes, n - pos); ++len) {
        auto it = pieces_.find(text.substr(pos, len));
        if (it == pieces_.end()) continue;
        const auto& p = model_.pieces[it->second];
        if (p.type == PieceType::kUnused) continue;
        const float s = p.type == PieceType::kUserDefined ? len * max_score_ - 0.1f : p.score;
        if (len == char_len) single_char_piece = true;
        Node& target = best[pos + len];
        if (!target.reached || best[pos].score + s > target.score)
          target = {best[pos].score + s, pos, it->second, true};
      }
      if (!single_char_piece) {
        Node& target = best[pos + char_len];
        if (!target.reached || best[pos].score + unk_score > target.score)
          target = {best[pos].score + unk_score, pos, -1, true};
      }
    }
    pos += char_len;
  }
  std::vector<Segment> out;
  for (size_t end = n; end > 0;) {
    const Node& node = best[end];
    out.push_back({text.substr(node.start, end - node.start), node.id});
    end = node.start;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int64_t> ids;
  if (add_bos) {
    if (model_.bos_id < 0) fail(source_, "this model has no BOS token");
    ids.push_back(model_.bos_id);
  }
  const std::string normalized = normalize(text);
  if (normalized.empty()) return ids;
  const auto segments =
      model_.algorithm == SentencePieceModel::Algorithm::kBpe ? encode_bpe(normalized) : encode_unigram(normalized);
  bool previous_unknown = false;
  for (const auto& [piece, id] : segments) {
    const bool unknown = id < 0 || id == model_.unk_id;
    if (unknown && model_.byte_fallback) {
      for (unsigned char b : piece) ids.push_back(byte_piece_id_[b]);
      previous_unknown = false;
      continue;
    }
    // Without byte fallback a run of unknown pieces becomes one <unk>, as in the library.
    if (unknown && previous_unknown) continue;
    ids.push_back(unknown ? model_.unk_id : id);
    previous_unknown = unknown;
  }
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  // The library's rule for the dummy-prefix space: while nothing has been output, a leading
  // '▁' is consumed from each piece; without whitespace collapsing only the first consumed
  // '▁' counts. Runs of byte pieces become UTF-8 text, each invalid byte U+FFFD.
  std::string text;
  std::string pending_bytes;
  bool expect_bos_space = true;
  bool bos_space_seen = false;
  const bool strip_leading = model_.add_dummy_prefix || model_.remove_extra_whitespaces;
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) fail(source_, "decode: id " + std::to_string(id) + " is outside the vocabulary");
    const auto& p = model_.pieces[id];
    if (p.type == PieceType::kByte) {
      pending_bytes += static_cast<char>(std::stoi(p.text.substr(3, 2), nullptr, 16));
      continue;
    }
    if (!pending_bytes.empty()) {
      text += utf8::sanitize(pending_bytes);
      pending_bytes.clear();
    }
    if (bos_space_seen || !text.empty()) expect_bos_space = false;
    bos_space_seen = false;
    if (p.type == PieceType::kControl) {
      if (!skip_special) text += p.text;
      continue;
    }
    if (p.type == PieceType::kUnknown) {
      text += model_.unk_surface;
      continue;
    }
    std::string_view piece(p.text);
    if (expect_bos_space && strip_leading && piece.compare(0, 3, kSpaceSymbol) == 0) {
      piece.remove_prefix(3);
      bos_space_seen = !model_.remove_extra_whitespaces;
    }
    std::string s(piece);
    for (size_t pos; (pos = s.find(kSpaceSymbol)) != std::string::npos;) s.replace(pos, 3, " ");
    text += s;
  }
  if (!pending_bytes.empty()) text += utf8::sanitize(pending_bytes);
  return text;
}

std::string SentencePieceTokenizer::id_to_piece(int64_t id) const {
  if (id < 0 || id >= vocab_size()) fail(source_, "id " + std::to_string(id) + " is outside the vocabulary");
  return model_.pieces[id].text;
}

std::optional<int64_t> SentencePieceTokenizer::piece_to_id(const std::string& piece) const {
  if (auto it = reserved_.find(piece); it != reserved_.end()) return it->second;
  if (auto it = pieces_.find(piece); it != pieces_.end()) return it->second;
  return std::nullopt;
}

std::optional<int64_t> SentencePieceTokenizer::special_id(const std::string& text) const {
  auto it = reserved_.find(text);
  if (it == reserved_.end()) return std::nullopt;
  const auto type = model_.pieces[it->second].type;
  if (type == PieceType::kControl || type == PieceType::kUnknown) return it->second;
  return std::nullopt;
}

bool SentencePieceTokenizer::is_special(int64_t id) const {
  if (id < 0 || id >= vocab_size()) return false;
  const auto type = model_.pieces[id].type;
  return type == PieceType::kControl || type == PieceType::kUnknown;
}

std::optional<int64_t> SentencePieceTokenizer::bos_id() const {
  return model_.bos_id >= 0 ? std::optional<int64_t>(model_.bos_id) : std::nullopt;
}
std::optional<int64_t> SentencePieceTokenizer::eos_id() const {
  return model_.eos_id >= 0 ? std::optional<int64_t>(model_.eos_id) : std::nullopt;
}

std::string SentencePieceTokenizer::kind() const {
  return model_.algorithm == SentencePieceModel::Algorithm::kBpe ? "sentencepiece-bpe" : "sentencepiece-unigram";
}

}  // namespace echokv
