// The context span of a chat-rendered prompt (what KVzip may evict): the prompt keeps its
// one-piece tokenization; the span covers exactly the context's tokens, the header before it
// and the question, template closing and answer prefix after it stay outside.
#include <gtest/gtest.h>

#include "eval/prompt_split.h"
#include "eval/py_text.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

namespace {

void check_split(const std::string& tokenizer_path, ChatFormat format, const std::vector<int64_t>& expected_postfix) {
  auto tok = load_tokenizer(require_fixture(tokenizer_path));
  ChatOptions chat;
  chat.format = format;
  const std::string context = "The grass is green. The special magic number for cats is 4432.";
  const std::string input = context + "\nWhat is the special magic number for cats?";
  auto ids = render_chat(*tok, {{"user", input}}, chat);
  const auto prefix = tok->encode(" Answer:", false);
  ids.insert(ids.end(), prefix.begin(), prefix.end());
  const PromptRenderer render = [&](const std::string& t) { return render_chat(*tok, {{"user", t}}, chat); };
  const auto span = find_context_span(render, input, static_cast<int64_t>(context.size()), ids);
  ASSERT_GT(span.context_begin, 0);
  ASSERT_GT(span.context_end, span.context_begin);
  ASSERT_LT(span.context_end, static_cast<int64_t>(ids.size()));
  const std::vector<int64_t> head(ids.begin(), ids.begin() + span.context_begin),
      body(ids.begin() + span.context_begin, ids.begin() + span.context_end), rest(ids.begin() + span.context_end, ids.end());
  // The context's tokens; a token merged across the boundary (Llama 3's ".\n") goes to the question.
  const std::string got = py::strip(tok->decode(body));
  ASSERT_GE(got.size(), context.size() - 1);
  EXPECT_EQ(context.substr(0, got.size()), got);
  const std::string after = tok->decode(rest);
  EXPECT_EQ(py::strip(after).rfind(py::strip(context.substr(got.size()) + "\nWhat is the special magic number for cats?"), 0), 0u)
      << after;
  EXPECT_NE(after.find("Answer:"), std::string::npos);
  EXPECT_EQ(tok->decode(head).find("grass"), std::string::npos);  // the header holds no content
  EXPECT_EQ(chat_postfix_ids(*tok, chat), expected_postfix);
  // Unknown split: the span starts after the header and has no end.
  const auto none = find_context_span(render, input, -1, ids);
  EXPECT_EQ(none.context_begin, span.context_begin);
  EXPECT_EQ(none.context_end, -1);
}

}  // namespace

TEST(PromptSplit, Llama3ChatPrompt) {
  // <|eot_id|> <|start_header_id|> assistant <|end_header_id|> "\n\n"
  check_split("fixtures/tokenizers/llama3/tokenizer.model", ChatFormat::kLlama3, {128009, 128006, 78191, 128007, 271});
}

TEST(PromptSplit, MistralChatPrompt) {
  auto tok = load_tokenizer(require_fixture("fixtures/tokenizers/mistral-v3/tokenizer.model"));
  const auto inst_end = tok->piece_to_id("[/INST]");
  ASSERT_TRUE(inst_end.has_value());
  check_split("fixtures/tokenizers/mistral-v3/tokenizer.model", ChatFormat::kMistral, std::vector<int64_t>{*inst_end});
}

TEST(PromptSplit, PlainPromptHasOnlyBosBeforeTheContext) {
  auto tok = load_tokenizer(require_fixture("fixtures/tokenizers/llama2/tokenizer.model"));
  ChatOptions chat;  // plain
  const std::string input = "Alpha beta gamma delta.\n\nQuestion: which letter?";
  const auto ids = render_chat(*tok, {{"user", input}}, chat);
  const PromptRenderer render = [&](const std::string& t) { return render_chat(*tok, {{"user", t}}, chat); };
  const auto span = find_context_span(render, input, 23, ids);
  EXPECT_EQ(span.context_begin, 1);  // BOS
  EXPECT_EQ(py::strip(tok->decode({ids.begin() + 1, ids.begin() + span.context_end})), "Alpha beta gamma delta.");
  EXPECT_TRUE(chat_postfix_ids(*tok, chat).empty());
}

// KVzip's repeat-prompt postfix as snu-mllab/KVzip's template.py writes it.
TEST(PromptSplit, KvzipRepeatPostfixFollowsTheOfficialTemplates) {
  auto l3 = load_tokenizer(require_fixture("fixtures/tokenizers/llama3/tokenizer.model"));
  ChatOptions chat;
  chat.format = ChatFormat::kLlama3;
  std::vector<int64_t> expected = l3->encode("\n\n", false);
  expected.push_back(*l3->special_id("<|eot_id|>"));
  expected.push_back(*l3->special_id("<|start_header_id|>"));
  for (auto id : l3->encode("assistant", false)) expected.push_back(id);
  expected.push_back(*l3->special_id("<|end_header_id|>"));
  for (auto id : l3->encode("\n\n", false)) expected.push_back(id);
  EXPECT_EQ(kvzip_repeat_postfix_ids(*l3, chat), expected);
  // no chat template: the official fallback "\n\nAnswer: "
  auto l2 = load_tokenizer(require_fixture("fixtures/tokenizers/llama2/tokenizer.model"));
  ChatOptions plain;
  EXPECT_EQ(kvzip_repeat_postfix_ids(*l2, plain), l2->encode("\n\nAnswer: ", false));
  EXPECT_FALSE(kvzip_repeat_postfix_ids(*l2, plain).empty());
}

// KVzip's system prefix (template.py, task "qa"): Llama 3's system block and user header, then
// the instruction; without a template BOS + the instruction.
TEST(PromptSplit, KvzipSystemPrefixFollowsTheOfficialTemplate) {
  const std::string instruction = "Given the context, answer to the following question or request without explanation.\n\n";
  auto l3 = load_tokenizer(require_fixture("fixtures/tokenizers/llama3/tokenizer.model"));
  ChatOptions chat;
  chat.format = ChatFormat::kLlama3;
  std::vector<int64_t> expected = {*l3->special_id("<|begin_of_text|>"), *l3->special_id("<|start_header_id|>")};
  for (auto id : l3->encode("system", false)) expected.push_back(id);
  expected.push_back(*l3->special_id("<|end_header_id|>"));
  for (auto id : l3->encode("\n\nYou are a helpful assistant", false)) expected.push_back(id);
  expected.push_back(*l3->special_id("<|eot_id|>"));
  expected.push_back(*l3->special_id("<|start_header_id|>"));
  for (auto id : l3->encode("user", false)) expected.push_back(id);
  expected.push_back(*l3->special_id("<|end_header_id|>"));
  for (auto id : l3->encode("\n\n" + instruction, false)) expected.push_back(id);  // one string after the header
  EXPECT_EQ(kvzip_system_prefix_ids(*l3, chat), expected);
  // no date lines: the official block is not HF's Llama 3.1 default
  EXPECT_EQ(l3->decode(kvzip_system_prefix_ids(*l3, chat)).find("Cutting Knowledge"), std::string::npos);
  auto l2 = load_tokenizer(require_fixture("fixtures/tokenizers/llama2/tokenizer.model"));
  ChatOptions plain;
  std::vector<int64_t> fallback = {*l2->bos_id()};
  for (auto id : l2->encode(instruction, false)) fallback.push_back(id);
  EXPECT_EQ(kvzip_system_prefix_ids(*l2, plain), fallback);
}

// The answer prefix continues the assistant turn in one piece with what precedes it.
TEST(PromptSplit, AnswerPrefixIsEncodedWithThePrompt) {
  auto l2 = load_tokenizer(require_fixture("fixtures/tokenizers/llama2/tokenizer.model"));
  ChatOptions plain;
  const auto ids = render_chat(*l2, {{"user", "What is it?"}}, plain, " Answer:");
  EXPECT_EQ(ids, l2->encode("What is it? Answer:", true));
  ChatOptions llama2;
  llama2.format = ChatFormat::kLlama2;
  EXPECT_EQ(render_chat(*l2, {{"user", "What is it?"}}, llama2, " Answer:"), l2->encode("[INST] What is it? [/INST] Answer:", true));
  auto l3 = load_tokenizer(require_fixture("fixtures/tokenizers/llama3/tokenizer.model"));
  ChatOptions c3;
  c3.format = ChatFormat::kLlama3;
  c3.knowledge_date_header = false;  // RULER's form: no system block
  const auto r = render_chat(*l3, {{"user", "Hi"}}, c3, " Answer:");
  EXPECT_EQ(r[1], *l3->special_id("<|start_header_id|>"));
  EXPECT_EQ(l3->decode(std::vector<int64_t>(r.begin() + 2, r.begin() + 3), false), "user");
  const auto tail = l3->encode("\n\n Answer:", false);
  EXPECT_EQ(std::vector<int64_t>(r.end() - static_cast<std::ptrdiff_t>(tail.size()), r.end()), tail);
}
