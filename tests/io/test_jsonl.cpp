// JSON Lines reading: records in order, blank lines skipped, torn tails tolerated only when
// asked, and every error names the file and the line.
#include <fstream>

#include <gtest/gtest.h>

#include "io/jsonl.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

TEST(Jsonl, TextsInOrderSkippingBlankLines) {
  TempDir dir;
  std::ofstream(dir.file("a.jsonl")) << "{\"text\": \"one\"}\n\n  \n{\"text\": \"two\\nlines\", \"source\": \"x\"}\r\n";
  EXPECT_EQ(read_jsonl_texts(dir.file("a.jsonl")), (std::vector<std::string>{"one", "two\nlines"}));
  std::ofstream(dir.file("b.jsonl")) << "{\"body\": \"b\"}\n";
  EXPECT_EQ(read_jsonl_texts(dir.file("b.jsonl"), "body"), (std::vector<std::string>{"b"}));
}

TEST(Jsonl, ErrorsNameTheFileAndLine) {
  TempDir dir;
  std::ofstream(dir.file("missing.jsonl")) << "{\"text\": \"ok\"}\n\n{\"title\": \"no text\"}\n";
  auto msg = error_of([&] { read_jsonl_texts(dir.file("missing.jsonl")); });
  EXPECT_NE(msg.find("missing.jsonl:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'text'"), std::string::npos) << msg;

  std::ofstream(dir.file("number.jsonl")) << "{\"text\": 7}\n";
  msg = error_of([&] { read_jsonl_texts(dir.file("number.jsonl")); });
  EXPECT_NE(msg.find("number.jsonl:1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("must be a string"), std::string::npos) << msg;

  std::ofstream(dir.file("broken.jsonl")) << "{\"text\": \"a\"}\n{\"text\": \n";
  msg = error_of([&] { read_jsonl_texts(dir.file("broken.jsonl")); });
  EXPECT_NE(msg.find("broken.jsonl:2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("malformed JSON"), std::string::npos) << msg;

  std::ofstream(dir.file("array.jsonl")) << "[1, 2]\n";
  msg = error_of([&] { read_jsonl(dir.file("array.jsonl")); });
  EXPECT_NE(msg.find("array.jsonl:1"), std::string::npos) << msg;

  msg = error_of([&] { read_jsonl_texts(dir.file("absent.jsonl")); });
  EXPECT_NE(msg.find("absent.jsonl"), std::string::npos) << msg;
}

TEST(Jsonl, TornLastLineIsSkippedOnlyWhenTolerated) {
  TempDir dir;
  const std::string path = dir.file("log.jsonl");
  append_jsonl(path, {{"step", 1}});
  append_jsonl(path, {{"step", 2}});
  std::ofstream(path, std::ios::app) << "{\"step\": 3, \"lo";  // a crash mid-append
  auto records = read_jsonl(path, true);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1]["step"], 2);
  EXPECT_NE(error_of([&] { read_jsonl(path); }).find("log.jsonl:3"), std::string::npos);
}
