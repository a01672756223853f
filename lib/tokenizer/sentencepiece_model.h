// A SentencePiece `tokenizer.model` (protobuf ModelProto), read natively: libsentencepiece
// cannot share a process with LibTorch on Debian (see README). Only the fields encoding
// and decoding depend on are kept.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace echokv {

struct SentencePieceModel {
  enum class PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
  enum class Algorithm { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };
  struct Piece {
    std::string text;
    float score = 0;
    PieceType type = PieceType::kNormal;
  };

  std::vector<Piece> pieces;
  // TrainerSpec
  Algorithm algorithm = Algorithm::kUnigram;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string unk_surface = " \xE2\x81\x87 ";
  // NormalizerSpec
  std::string normalizer_name;
  std::string precompiled_charsmap;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;

  // Parses the serialized ModelProto; errors name `source`.
  static SentencePieceModel parse(const std::string& bytes, const std::string& source);
  static SentencePieceModel load(const std::string& path);
};

}  // namespace echokv
