#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "test_support.h"

using namespace echokv;
using echokv::testing::TempDir;

namespace {

// Writes a raw safetensors file: 8-byte length, header text, data bytes.
void write_raw(const std::string& path, const std::string& header, const std::string& data,
               int64_t declared_len = -1) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = declared_len >= 0 ? static_cast<uint64_t>(declared_len) : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << data;
}

// Expects open() to throw an Error whose message names the file and contains `needle`.
void expect_error(const std::string& path, const std::string& needle) {
  try {
    SafetensorsFile::open(path);
    FAIL() << "no error for " << path << " (expected '" << needle << "')";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(Safetensors, RoundTripAllDtypes) {
  TempDir dir;
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"f64", torch::randn({3, 2}, torch::kFloat64)},
      {"f32", torch::randn({5}, torch::kFloat32)},
      {"f16", torch::randn({2, 3}).to(torch::kFloat16)},
      {"bf16", torch::randn({4, 1}).to(torch::kBFloat16)},
      {"i64", torch::arange(7, torch::kInt64)},
      {"i32", torch::arange(3, torch::kInt32)},
      {"i16", torch::arange(3, torch::kInt16)},
      {"i8", torch::arange(-3, 3, torch::kInt8)},
      {"u8", torch::arange(9, torch::kUInt8)},
      {"bool", torch::tensor({true, false, true})},
      {"empty", torch::zeros({0, 4})},
      {"scalar", torch::tensor(3.5)},
  };
  const std::string path = dir.file("all.safetensors");
  save_safetensors(path, tensors, {{"format", "pt"}});
  auto file = SafetensorsFile::open(path);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  for (const auto& [name, t] : tensors) {
    auto got = file->tensor(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), t.sizes()) << name;
    EXPECT_TRUE(torch::equal(got, t)) << name;
  }
}

TEST(Safetensors, AlignedTensorsAreZeroCopyViewsThatOutliveTheFileObject) {
  TempDir dir;
  const std::string path = dir.file("w.safetensors");
  auto w = torch::randn({16, 16});
  save_safetensors(path, {{"w", w}});
  torch::Tensor view;
  const void* p1 = nullptr;
  {
    auto file = SafetensorsFile::open(path);
    view = file->tensor("w");
    p1 = file->tensor("w").data_ptr();
  }
  EXPECT_EQ(view.data_ptr(), p1);       // both views point into the one mapping
  EXPECT_TRUE(torch::equal(view, w));   // mapping kept alive after the file object died
  view.add_(1.0);                       // private copy-on-write: the file is untouched
  EXPECT_TRUE(torch::equal(SafetensorsFile::open(path)->tensor("w"), w));
}

TEST(Safetensors, ErrorsNameTheFileAndTheProblem) {
  TempDir dir;
  const std::string ok_header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string eight(8, '\0');

  std::string p = dir.file("short.safetensors");
  std::ofstream(p, std::ios::binary) << "abc";
  expect_error(p, "truncated");

  p = dir.file("hdrlen.safetensors");
  write_raw(p, ok_header, eight, 1 << 20);
  expect_error(p, "header length");

  p = dir.file("badjson.safetensors");
  write_raw(p, R"({"a": {"dtype": "F32",)", "");
  expect_error(p, "not valid JSON");

  p = dir.file("range.safetensors");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, '\0'));
  expect_error(p, "past the data buffer");

  p = dir.file("mismatch.safetensors");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight);
  expect_error(p, "needs 12");

  p = dir.file("overlap.safetensors");
  write_raw(p,
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            eight);
  expect_error(p, "overlap");

  p = dir.file("hole.safetensors");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight);
  expect_error(p, "hole");

  p = dir.file("trailing.safetensors");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight);
  expect_error(p, "trailing");

  p = dir.file("dtype.safetensors");
  write_raw(p, R"({"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", eight);
  expect_error(p, "unsupported dtype 'F8_E4M3'");

  p = dir.file("dup.safetensors");
  write_raw(p,
            R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
            eight);
  expect_error(p, "duplicate tensor name 'a'");

  p = dir.file("negative.safetensors");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight);
  expect_error(p, "negative");

  // 2^62 float32 elements are 2^64 bytes: an unchecked product wraps to 0 and matches [0, 0]
  p = dir.file("wrap.safetensors");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", "");
  expect_error(p, "is too large (its byte count overflows)");
  p = dir.file("wrap2.safetensors");
  write_raw(p, R"({"a":{"dtype":"I64","shape":[2147483648, 2147483648],"data_offsets":[0,0]}})", "");
  expect_error(p, "its byte count overflows");

  p = dir.file("missing.safetensors");
  write_raw(p, ok_header, eight);
  auto file = SafetensorsFile::open(p);
  try {
    file->tensor("nope");
    FAIL() << "missing tensor not reported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor 'nope'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos);
  }
}

TEST(Checkpoint, ShardedIndexResolvesEveryTensorAndIgnoresInvFreq) {
  TempDir dir;
  save_safetensors(dir.file("s1.safetensors"), {{"x", torch::ones({2})}, {"m.rotary_emb.inv_freq", torch::ones({2})}});
  save_safetensors(dir.file("s2.safetensors"), {{"y", torch::zeros({3})}});
  std::ofstream(dir.file("model.safetensors.index.json"))
      << R"({"metadata":{},"weight_map":{"x":"s1.safetensors","y":"s2.safetensors","m.rotary_emb.inv_freq":"s1.safetensors"}})";
  auto ck = Checkpoint::open(dir.path());
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(torch::equal(ck.tensor("y"), torch::zeros({3})));
  EXPECT_EQ(ck.file_of("y"), dir.file("s2.safetensors"));
}

TEST(Checkpoint, IndexPointingAtMissingShardOrTensorIsAnError) {
  TempDir dir;
  save_safetensors(dir.file("s1.safetensors"), {{"x", torch::ones({2})}});
  std::ofstream(dir.file("model.safetensors.index.json"))
      << R"({"weight_map":{"x":"s1.safetensors","z":"s1.safetensors"}})";
  EXPECT_THROW(
      {
        try {
          Checkpoint::open(dir.path());
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("'z'"), std::string::npos);
          throw;
        }
      },
      Error);
  std::ofstream(dir.file("model.safetensors.index.json"), std::ios::trunc)
      << R"({"weight_map":{"x":"gone.safetensors"}})";
  EXPECT_THROW(Checkpoint::open(dir.path()), Error);
  TempDir empty;
  EXPECT_THROW(Checkpoint::open(empty.path()), Error);
}

}  // namespace

TEST(Checkpoint, IndexShardsMustBeFilesInsideTheModelFolder) {
  TempDir outside, dir;
  save_safetensors(outside.file("x.safetensors"), {{"x", torch::ones({2})}});
  const std::string escapes[] = {"../" + std::filesystem::path(outside.path()).filename().string() + "/x.safetensors",
                                 outside.file("x.safetensors"), "sub/x.safetensors", ".."};
  for (const auto& shard : escapes) {
    std::ofstream(dir.file("model.safetensors.index.json"), std::ios::trunc) << R"({"weight_map":{"x":")" + shard + R"("}})";
    try {
      Checkpoint::open(dir.path());
      ADD_FAILURE() << "no error for shard " << shard;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not a file in the model folder"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("model.safetensors.index.json"), std::string::npos) << e.what();
    }
  }
}
