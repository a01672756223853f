// LongBench inputs as pred.py builds them: prompt filled from the record, middle truncation
// by tokens, chat template only for the datasets that use it, samsum's extra "\n" stop.
#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/longbench_prompt.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

TEST(LongBenchPrompt, TruncatesInTheMiddleAndAppliesChatOnlyWhereUsed) {
  auto tok = load_tokenizer(source_dir() + "/data/training/testbed-8l/tokenizer.model");
  const auto prompts = LongBenchPrompts::load(require_fixture("data/longbench"));
  ASSERT_TRUE(prompts.prompt.count("trec") && prompts.prompt.count("hotpotqa") && prompts.prompt.count("samsum"));
  EXPECT_EQ(prompts.max_new.at("trec"), 64);
  std::string context;
  for (int i = 0; i < 60; ++i) context += "Question: what is item " + std::to_string(i) + "?\nType: Entity\n";
  const nlohmann::json record = {{"input", "What is the capital of France?"}, {"context", context}, {"answers", {"City"}}};
  ChatOptions chat;  // plain: BOS + content
  // Untruncated reference: the filled prompt, tokenized with BOS.
  const std::string filled = fill_longbench_prompt(prompts.prompt.at("trec"), record, "test");
  EXPECT_NE(filled.find(context), std::string::npos);
  const auto full_ids = tok->encode(filled, true);
  ASSERT_GT(full_ids.size(), 200u);
  const auto in = build_longbench_input(prompts, "trec", record, *tok, chat, 100, "test");
  const std::vector<int64_t> head(full_ids.begin(), full_ids.begin() + 50), tail(full_ids.end() - 50, full_ids.end());
  EXPECT_EQ(in.ids, tok->encode(tok->decode(head, true) + tok->decode(tail, true), true));
  EXPECT_EQ(in.max_new_tokens, 64);
  EXPECT_TRUE(in.extra_stop_ids.empty());
  // Fits: no truncation; a chat dataset goes through the chat template (plain: same ids here).
  const auto hp = build_longbench_input(prompts, "hotpotqa", record, *tok, chat, 100000, "test");
  EXPECT_EQ(hp.ids, render_chat(*tok, {{"user", fill_longbench_prompt(prompts.prompt.at("hotpotqa"), record, "t")}}, chat));
  const auto ss = build_longbench_input(prompts, "samsum", record, *tok, chat, 100000, "test");
  ASSERT_EQ(ss.extra_stop_ids.size(), 1u);
  EXPECT_EQ(ss.extra_stop_ids[0], tok->encode("\n", false).back());
  EXPECT_FALSE(longbench_uses_chat("lcc"));
  EXPECT_TRUE(longbench_uses_chat("qasper"));
  // A record without a field the prompt uses is a clear error naming it.
  const auto e = error_of([&] { build_longbench_input(prompts, "trec", {{"input", "x"}}, *tok, chat, 100, "f.jsonl:3"); });
  EXPECT_NE(e.find("f.jsonl:3"), std::string::npos) << e;
  EXPECT_NE(e.find("'context'"), std::string::npos) << e;
}

TEST(LongBenchPrompt, ContextSpanEndsWhereTheTemplatesQuestionBegins) {
  auto tok = load_tokenizer(source_dir() + "/data/training/testbed-8l/tokenizer.model");
  const auto prompts = LongBenchPrompts::load(require_fixture("data/longbench"));
  std::string context;
  for (int i = 0; i < 60; ++i) context += "Passage " + std::to_string(i) + ": the river runs north.\n";
  const nlohmann::json record = {{"input", "Which way does the river run?"}, {"context", context}, {"answers", {"north"}}};
  ChatOptions chat;
  const auto hp = build_longbench_input(prompts, "hotpotqa", record, *tok, chat, 100000, "test");
  ASSERT_GT(hp.span.context_end, hp.span.context_begin);
  EXPECT_EQ(hp.span.context_begin, 1);  // BOS
  const std::string body = tok->decode({hp.ids.begin() + hp.span.context_begin, hp.ids.begin() + hp.span.context_end});
  const std::string rest = tok->decode({hp.ids.begin() + hp.span.context_end, hp.ids.end()});
  // hotpotqa's template: instructions and passages, then instructions again and the question.
  EXPECT_NE(body.find("Passage 59: the river runs north."), std::string::npos);
  EXPECT_EQ(body.find("Question:"), std::string::npos);
  EXPECT_NE(rest.find("Question: Which way does the river run?"), std::string::npos);
  // Truncated to 100 tokens: the kept tail still holds the question, so the split survives.
  const auto cut = build_longbench_input(prompts, "hotpotqa", record, *tok, chat, 100, "test");
  ASSERT_GT(cut.span.context_end, 0);
  EXPECT_NE(tok->decode({cut.ids.begin() + cut.span.context_end, cut.ids.end()}).find("Which way does the river run?"),
            std::string::npos);
  // Truncated so hard that the question is cut: no split.
  const auto tiny = build_longbench_input(prompts, "hotpotqa", record, *tok, chat, 16, "test");
  EXPECT_EQ(tiny.span.context_end, -1);
}

// pred.py's build_chat for Llama 2: "[INST]{prompt}[/INST]" as text with BOS, not HF's
// "<s>[INST] {prompt.strip()} [/INST]"; samsum may not stop on its first token.
TEST(LongBenchPrompt, LongBenchsLlama2FormAndSamsumMinimum) {
  auto tok = load_tokenizer(require_fixture("fixtures/tokenizers/llama2/tokenizer.model"));
  const auto prompts = LongBenchPrompts::load(require_fixture("data/longbench"));
  const nlohmann::json record = {{"input", "Which way?"}, {"context", "The river runs north."}, {"answers", {"north"}}};
  ChatOptions chat;
  chat.format = ChatFormat::kLlama2;
  const std::string filled = fill_longbench_prompt(prompts.prompt.at("hotpotqa"), record, "t");
  const auto ours = build_longbench_input(prompts, "hotpotqa", record, *tok, chat, 100000, "t", true);
  EXPECT_EQ(ours.ids, tok->encode("[INST]" + filled + "[/INST]", true));
  const auto hf = build_longbench_input(prompts, "hotpotqa", record, *tok, chat, 100000, "t", false);
  EXPECT_EQ(hf.ids, render_chat(*tok, {{"user", filled}}, chat));
  EXPECT_NE(hf.ids, ours.ids);
  // the context span still covers the passage (its final "." merges with "[/INST]"'s "[": outside)
  const std::string body = tok->decode({ours.ids.begin() + ours.span.context_begin, ours.ids.begin() + ours.span.context_end});
  EXPECT_NE(body.find("The river runs north"), std::string::npos)
      << ours.span.context_begin << ".." << ours.span.context_end << " of " << ours.ids.size() << ": " << body;
  // a dataset without chat keeps the bare prompt in either form
  const auto trec = build_longbench_input(prompts, "trec", record, *tok, chat, 100000, "t", true);
  EXPECT_EQ(trec.ids, tok->encode(fill_longbench_prompt(prompts.prompt.at("trec"), record, "t"), true));
  EXPECT_EQ(build_longbench_input(prompts, "samsum", record, *tok, chat, 100000, "t").min_new_tokens, 1);
  EXPECT_EQ(ours.min_new_tokens, 0);
}
