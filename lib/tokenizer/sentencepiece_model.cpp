#include "tokenizer/sentencepiece_model.h"

#include <cstring>

#include "core/error.h"
#include "core/files.h"

namespace echokv {

namespace {

// Minimal protobuf wire-format reader: varints, fixed32/64 and length-delimited fields.
class WireReader {
 public:
  WireReader(std::string_view data, const std::string& source) : data_(data), source_(source) {}
  bool done() const { return pos_ >= data_.size(); }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) fail(source_, "truncated protobuf varint (not a SentencePiece model?)");
      const auto b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail(source_, "malformed protobuf varint (not a SentencePiece model?)");
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    if (n > data_.size() - pos_) fail(source_, "protobuf field runs past the end of the file (truncated?)");
    auto out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  uint32_t fixed32() {
    if (data_.size() - pos_ < 4) fail(source_, "truncated protobuf fixed32");
    uint32_t v;
    std::memcpy(&v, data_.data() + pos_, 4);
    pos_ += 4;
    return v;
  }
  void skip(int wire_type) {
    switch (wire_type) {
      case 0: varint(); break;
      case 1:
        if (data_.size() - pos_ < 8) fail(source_, "truncated protobuf fixed64");
        pos_ += 8;
        break;
      case 2: bytes(); break;
      case 5: fixed32(); break;
      default: fail(source_, "unknown protobuf wire type " + std::to_string(wire_type) + " (not a SentencePiece model?)");
    }
  }
  // Reads the next key; returns {field, wire_type}.
  std::pair<uint32_t, int> key() {
    const uint64_t k = varint();
    return {static_cast<uint32_t>(k >> 3), static_cast<int>(k & 7)};
  }

 private:
  std::string_view data_;
  const std::string& source_;
  size_t pos_ = 0;
};

float as_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Field numbers follow sentencepiece_model.proto.
void parse_piece(std::string_view data, const std::string& src, SentencePieceModel& m) {
  WireReader r(data, src);
  SentencePieceModel::Piece p;
  while (!r.done()) {
    auto [field, wt] = r.key();
    if (field == 1 && wt == 2) p.text = std::string(r.bytes());
    else if (field == 2 && wt == 5) p.score = as_float(r.fixed32());
    else if (field == 3 && wt == 0) {
      const uint64_t t = r.varint();
      if (t < 1 || t > 6) fail(src, "piece '" + p.text + "' has unknown type " + std::to_string(t));
      p.type = static_cast<SentencePieceModel::PieceType>(t);
    } else r.skip(wt);
  }
  m.pieces.push_back(std::move(p));
}

void parse_trainer(std::string_view data, const std::string& src, SentencePieceModel& m) {
  WireReader r(data, src);
  while (!r.done()) {
    auto [field, wt] = r.key();
    if (wt != 0) { r.skip(wt); continue; }
    const uint64_t v = r.varint();
    switch (field) {
      case 3: m.algorithm = static_cast<SentencePieceModel::Algorithm>(v); break;
      case 24: m.treat_whitespace_as_suffix = v != 0; break;
      case 35: m.byte_fallback = v != 0; break;
      case 40: m.unk_id = static_cast<int>(static_cast<int32_t>(v)); break;
      case 41: m.bos_id = static_cast<int>(static_cast<int32_t>(v)); break;
      case 42: m.eos_id = static_cast<int>(static_cast<int32_t>(v)); break;
      case 43: m.pad_id = static_cast<int>(static_cast<int32_t>(v)); break;
      default: break;
    }
  }
}

void parse_trainer_strings(std::string_view data, const std::string& src, SentencePieceModel& m) {
  WireReader r(data, src);
  while (!r.done()) {
    auto [field, wt] = r.key();
    if (field == 44 && wt == 2) m.unk_surface = std::string(r.bytes());
    else r.skip(wt);
  }
}

void parse_normalizer(std::string_view data, const std::string& src, SentencePieceModel& m) {
  WireReader r(data, src);
  while (!r.done()) {
    auto [field, wt] = r.key();
    if (field == 1 && wt == 2) m.normalizer_name = std::string(r.bytes());
    else if (field == 2 && wt == 2) m.precompiled_charsmap = std::string(r.bytes());
    else if (field == 3 && wt == 0) m.add_dummy_prefix = r.varint() != 0;
    else if (field == 4 && wt == 0) m.remove_extra_whitespaces = r.varint() != 0;
    else if (field == 5 && wt == 0) m.escape_whitespaces = r.varint() != 0;
    else r.skip(wt);
  }
}

}  // namespace

SentencePieceModel SentencePieceModel::parse(const std::string& bytes, const std::string& src) {
  SentencePieceModel m;
  WireReader r(bytes, src);
  while (!r.done()) {
    auto [field, wt] = r.key();
    if (field == 1 && wt == 2) parse_piece(r.bytes(), src, m);
    else if (field == 2 && wt == 2) {
      auto d = r.bytes();
      parse_trainer(d, src, m);
      parse_trainer_strings(d, src, m);
    } else if (field == 3 && wt == 2) parse_normalizer(r.bytes(), src, m);
    else r.skip(wt);
  }
  if (m.pieces.empty()) fail(src, "no pieces: not a SentencePiece model");
  const int n = static_cast<int>(m.pieces.size());
  if (m.unk_id < 0 || m.unk_id >= n || m.pieces[m.unk_id].type != PieceType::kUnknown)
    fail(src, "unk_id " + std::to_string(m.unk_id) + " does not name an <unk> piece");
  if (m.algorithm != Algorithm::kBpe && m.algorithm != Algorithm::kUnigram)
    fail(src, "SentencePiece model type " + std::to_string(static_cast<int>(m.algorithm)) +
                  " is not supported (BPE and unigram are)");
  return m;
}

SentencePieceModel SentencePieceModel::load(const std::string& path) {
  return parse(read_text_file(path), path);
}

}  // namespace echokv
