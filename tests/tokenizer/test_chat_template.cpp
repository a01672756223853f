// Two-turn conversations rendered per family, against hand-built id sequences.
#include <gtest/gtest.h>

#include "tokenizer/chat_template.h"
#include "test_support.h"

using namespace echokv;
using echokv::testing::require_fixture;

namespace {

std::vector<int64_t> cat(std::initializer_list<std::vector<int64_t>> parts) {
  std::vector<int64_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

const std::vector<ChatMessage> kConversation = {{"system", "You are helpful."},
                                                {"user", "Hi there"},
                                                {"assistant", "Hello!"},
                                                {"user", "How are you?"}};

TEST(ChatTemplate, Llama31WithSystemAndKnowledgeHeader) {
  auto tok = load_tokenizer(require_fixture("fixtures/tokenizers/llama3/tokenizer.model"));
  ChatOptions o;
  o.format = ChatFormat::kLlama3;
  auto e = [&](const std::string& s) { return tok->encode(s); };
  // 128006 <|start_header_id|>, 128007 <|end_header_id|>, 128009 <|eot_id|>;
  // "system" = 9125, "user" = 882, "assistant" = 78191, "\n\n" = 271 in Llama 3's vocabulary.
  EXPECT_EQ(e("system"), (std::vector<int64_t>{9125}));
  EXPECT_EQ(e("user"), (std::vector<int64_t>{882}));
  EXPECT_EQ(e("assistant"), (std::vector<int64_t>{78191}));
  EXPECT_EQ(e("\n\n"), (std::vector<int64_t>{271}));
  auto want = cat({{128000, 128006, 9125, 128007},
                   e("\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are helpful."),
                   {128009, 128006, 882, 128007}, e("\n\nHi there"),
                   {128009, 128006, 78191, 128007}, e("\n\nHello!"),
                   {128009, 128006, 882, 128007}, e("\n\nHow are you?"),
                   {128009, 128006, 78191, 128007, 271}});
  EXPECT_EQ(render_chat(*tok, kConversation, o), want);
  EXPECT_EQ(chat_stop_ids(*tok, ChatFormat::kLlama3), (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(detect_chat_format(*tok), ChatFormat::kLlama3);
}

TEST(ChatTemplate, Llama31WithoutSystemPromptOrHeader) {
  auto tok = load_tokenizer(require_fixture("fixtures/tokenizers/llama3/tokenizer.model"));
  ChatOptions o;
  o.format = ChatFormat::kLlama3;
  std::vector<ChatMessage> msgs(kConversation.begin() + 1, kConversation.end());
  auto e = [&](const std::string& s) { return tok->encode(s); };
  // HF default: the system block with the date lines is there even without a system prompt.
  auto with_header = render_chat(*tok, msgs, o);
  auto head = cat({{128000, 128006, 9125, 128007},
                   e("\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"), {128009}});
  ASSERT_GE(with_header.size(), head.size());
  EXPECT_EQ(std::vector<int64_t>(with_header.begin(), with_header.begin() + head.size()), head);
  // Switched off: straight to the first user turn.
  o.knowledge_date_header = false;
  auto bare = render_chat(*tok, msgs, o);
  EXPECT_EQ(std::vector<int64_t>(bare.begin(), bare.begin() + 5), (std::vector<int64_t>{128000, 128006, 882, 128007, 271}));
  EXPECT_EQ(bare.size() + head.size() - 1, with_header.size());
}

TEST(ChatTemplate, MistralV3) {
  auto tok = load_tokenizer(require_fixture("fixtures/tokenizers/mistral-v3/tokenizer.model"));
  ChatOptions o;
  o.format = ChatFormat::kMistral;
  auto e = [&](const std::string& s) { return tok->encode(s); };
  // <s>=1 [INST]=3 [/INST]=4 </s>=2; the system prompt joins the LAST user message.
  auto want = cat({{1, 3}, e("Hi there"), {4}, e("Hello!"), {2, 3}, e("You are helpful.\n\nHow are you?"), {4}});
  EXPECT_EQ(render_chat(*tok, kConversation, o), want);
  EXPECT_EQ(detect_chat_format(*tok), ChatFormat::kMistral);
  EXPECT_EQ(chat_stop_ids(*tok, ChatFormat::kMistral), (std::vector<int64_t>{2}));
  // "Hi there" with the dummy prefix: "▁Hi" "▁there".
  EXPECT_EQ(tok->id_to_piece(e("Hi there")[0]), "\xE2\x96\x81Hi");
}

TEST(ChatTemplate, Llama2Chat) {
  auto tok = load_tokenizer(require_fixture("fixtures/tokenizers/llama2/tokenizer.model"));
  ChatOptions o;
  o.format = ChatFormat::kLlama2;
  auto e = [&](const std::string& s) { return tok->encode(s); };
  auto want = cat({{1}, e("[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHi there [/INST] Hello! "), {2, 1},
                   e("[INST] How are you? [/INST]")});
  EXPECT_EQ(render_chat(*tok, kConversation, o), want);
  EXPECT_EQ(detect_chat_format(*tok), ChatFormat::kPlain);  // Llama 2 needs the config or an explicit choice
}

TEST(ChatTemplate, BadConversationsAreRejected) {
  auto tok = load_tokenizer(require_fixture("fixtures/tokenizers/llama2/tokenizer.model"));
  ChatOptions o;
  o.format = ChatFormat::kLlama2;
  EXPECT_THROW(render_chat(*tok, {{"user", "a"}, {"user", "b"}}, o), std::exception);
  EXPECT_THROW(render_chat(*tok, {{"robot", "a"}}, o), std::exception);
  o.format = ChatFormat::kLlama3;
  EXPECT_THROW(render_chat(*tok, {{"user", "a"}}, o), std::exception);  // no header tokens in Llama 2's vocab
  EXPECT_THROW(parse_chat_format("chatml"), std::exception);
}

}  // namespace
