// Calibration / training text files: plain text, JSONL "text" records, and LongAlpaca-style
// instruction records (the EchoKV paper's training format) read as prompt + answer.
#include <gtest/gtest.h>

#include <fstream>

#include "analysis/calibration.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

TEST(CalibrationText, ReadsTextAndInstructionRecords) {
  TempDir tmp;
  const std::string path = tmp.file("mixed.jsonl");
  std::ofstream(path) << R"({"text": "plain document"})" << "\n"
                      << R"({"instruction": "Summarize the paper.", "output": "It compresses caches."})" << "\n"
                      << R"({"instruction": "Q?", "input": "context here", "output": "A.", "file": "x.pdf"})" << "\n"
                      << R"({"instruction": "Q2?", "input": "", "output": "B."})" << "\n";
  const auto docs = read_text_documents(path);
  ASSERT_EQ(docs.size(), 4u);
  EXPECT_EQ(docs[0], "plain document");
  EXPECT_EQ(docs[1], "Summarize the paper.\nIt compresses caches.");
  EXPECT_EQ(docs[2], "Q?\ncontext here\nA.");
  EXPECT_EQ(docs[3], "Q2?\nB.");  // an empty input adds nothing
  std::ofstream(tmp.file("plain.txt")) << "one whole file";
  EXPECT_EQ(read_text_documents(tmp.file("plain.txt")), std::vector<std::string>{"one whole file"});
}

TEST(CalibrationText, ARecordWithNeitherFormatNamesFileAndRecord) {
  TempDir tmp;
  const std::string path = tmp.file("bad.jsonl");
  std::ofstream(path) << R"({"text": "ok"})" << "\n" << R"({"output": "no instruction"})" << "\n";
  const std::string e = error_of([&] { read_text_documents(path); });
  EXPECT_NE(e.find("bad.jsonl: record 2"), std::string::npos) << e;
  EXPECT_NE(e.find("'instruction' and 'output'"), std::string::npos) << e;
  std::ofstream(tmp.file("typed.jsonl")) << R"({"instruction": 3, "output": "x"})" << "\n";
  EXPECT_NE(error_of([&] { read_text_documents(tmp.file("typed.jsonl")); }).find("'instruction' must be a string"),
            std::string::npos);
}
