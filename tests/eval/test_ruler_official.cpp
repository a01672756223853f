// RULER generation against the official scripts' behaviour (NVIDIA/RULER scripts/data):
// prompts land close below the target (not only <= L) for every task kind, tokenizer and
// model template; qa keeps RULER's one document order per count and never drops a sample
// whose answer is absent from its documents; cwe's few-shot and vt's ICL example have the
// official shapes; RULER's templates and the prompt ids are what RULER's tokenization gives.
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include <gtest/gtest.h>

#include "eval/py_text.h"
#include "eval/ruler_tasks.h"
#include "eval/ruler_template.h"
#include "io/jsonl.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

using namespace echokv;
using echokv::testing::require_fixture;

namespace {

struct Tokenizers {
  std::map<std::string, std::unique_ptr<Tokenizer>> by_name;
  RulerData data{require_fixture("data/ruler")};
  Tokenizers() {
    for (const char* n : {"llama2", "llama3", "mistral-v3"})
      by_name[n] = load_tokenizer(require_fixture(std::string("fixtures/tokenizers/") + n + "/tokenizer.model"));
  }
  const Tokenizer& tok(const std::string& n) { return *by_name.at(n); }
  RulerTokenCounter counter(const std::string& n) {
    const Tokenizer* t = by_name.at(n).get();
    return [t](const std::string& text) { return static_cast<int64_t>(encode_with_control_text(*t, text).size()); };
  }
};

Tokenizers& tokenizers() {
  static Tokenizers t;
  return t;
}

RulerGenerateOptions with_template(const std::string& name) {
  RulerGenerateOptions o;
  o.model_template = name;
  return o;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

size_t occurrences(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// The lowest length the official sizing reaches: one shrink step below L where samples vary
// in length (essay haystack: 500 words, RULER's known shortfall; needle haystack: 25 lines of
// ~30 tokens), fwe one growth step (budget / 32 words of <= 4 tokens) below its budget
// L - 50, within 10 % of L otherwise (noise haystacks, vt, cwe: steps of a few lines/words).
int64_t lower_bound_for(const std::string& task, int64_t max_length) {
  if (task == "niah_single_2" || task == "niah_multikey_2") return max_length - 800;
  if (task == "fwe") {
    const int64_t budget = max_length - 50;
    return budget - budget / 32 * 4;
  }
  return static_cast<int64_t>(0.9 * static_cast<double>(max_length));
}

}  // namespace

// Every task kind, three tokenizers, with and without a chat template, 4K and 16K.
TEST(RulerOfficial, PromptsLandCloseBelowTheTargetForEveryTaskKindAndTokenizer) {
  const std::vector<std::pair<std::string, std::string>> setups = {
      {"llama2", "base"}, {"llama2", "meta-chat"}, {"llama3", "base"}, {"llama3", "meta-llama3"}, {"mistral-v3", "meta-chat"}};
  const std::vector<std::string> tasks = {"niah_single_1", "niah_single_2", "niah_multikey_2", "vt", "cwe", "fwe"};
  for (const auto& [tok, tmpl] : setups)
    for (int64_t L : {4096, 16384})
      for (const auto& task : tasks) {
        const auto samples = tokenizers().data.generate(task, L, 2, 42, tokenizers().counter(tok), with_template(tmpl));
        for (const auto& s : samples) {
          // recounted here, as RULER records it: tokens of input + answer prefix, plus generation
          const int64_t length = tokenizers().counter(tok)(s.input + s.answer_prefix) + s.tokens_to_generate;
          EXPECT_EQ(s.length, length) << task;
          EXPECT_LE(length, L) << tok << "/" << tmpl << " " << task;
          EXPECT_GE(length, lower_bound_for(task, L)) << tok << "/" << tmpl << " " << task << " at " << L;
          EXPECT_EQ(s.model_template, tmpl);
        }
      }
}

// The long targets where the old search's cap bound hardest (cwe 31K, fwe 61K at 128K).
TEST(RulerOfficial, LongTargetsAreReachedToo) {
  for (const std::string task : {"vt", "fwe", "niah_single_1"}) {
    const int64_t L = 65536;
    const auto s = tokenizers().data.generate(task, L, 1, 42, tokenizers().counter("llama2"), with_template("base"))[0];
    EXPECT_LE(s.length, L) << task;
    EXPECT_GE(s.length, lower_bound_for(task, L)) << task;
  }
  const auto cwe = tokenizers().data.generate("cwe", 32768, 1, 42, tokenizers().counter("llama2"), with_template("base"))[0];
  EXPECT_LE(cwe.length, 32768);
  EXPECT_GE(cwe.length, lower_bound_for("cwe", 32768));
}

TEST(RulerOfficial, ModelTemplatesAreRulersTextAndTokenizeAsOneString) {
  EXPECT_EQ(ruler_model_template("meta-chat").wrap("X"), "[INST] X [/INST]");
  EXPECT_EQ(ruler_model_template("meta-llama3").wrap("X"),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nX<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_THROW(ruler_model_template("llama-chat"), Error);
  EXPECT_EQ(ruler_template_name_for(ChatFormat::kLlama3), "meta-llama3");
  EXPECT_EQ(ruler_template_name_for(ChatFormat::kLlama2), "meta-chat");
  EXPECT_EQ(ruler_template_name_for(ChatFormat::kPlain), "base");

  const Tokenizer& l3 = tokenizers().tok("llama3");
  // control-token text becomes the control ids; no second BOS before <|begin_of_text|>
  const auto ids = ruler_prompt_ids(l3, ruler_model_template("meta-llama3").wrap("Hi") + " Answer:");
  const std::vector<int64_t> expected_head = {*l3.special_id("<|begin_of_text|>"), *l3.special_id("<|start_header_id|>")};
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.begin() + 2), expected_head);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *l3.special_id("<|eot_id|>")), 1);
  auto tail = l3.encode("\n\n Answer:");
  EXPECT_EQ(std::vector<int64_t>(ids.end() - static_cast<std::ptrdiff_t>(tail.size()), ids.end()), tail);

  // llama2: "[INST]" is plain text; input + answer prefix is one string: no lone "▁" (29871)
  const Tokenizer& l2 = tokenizers().tok("llama2");
  auto s = tokenizers().data.generate("vt", 2048, 1, 42, tokenizers().counter("llama2"), with_template("meta-chat"))[0];
  const auto p = ruler_prompt(l2, s);
  EXPECT_EQ(p.first, l2.encode(s.input + s.answer_prefix, true));
  EXPECT_TRUE(starts_with(s.input, "[INST] "));
  EXPECT_TRUE(starts_with(s.answer_prefix, " Answer: According"));
  const auto split = l2.encode(s.input, true);
  EXPECT_EQ(l2.encode(s.answer_prefix)[0], 29871);  // what encoding the prefix alone would insert
  EXPECT_NE(p.first[split.size()], 29871);
  // the context span: after BOS and the template's "[INST] ", up to the question
  EXPECT_EQ(py::strip(l2.decode(std::vector<int64_t>(p.first.begin(), p.first.begin() + p.second.context_begin))), "[INST]");
  EXPECT_GT(p.second.context_end, 100);
  const std::string question = l2.decode(std::vector<int64_t>(p.first.begin() + p.second.context_end, p.first.end()));
  EXPECT_NE(question.find("Question: Find all variables"), std::string::npos) << question;
  EXPECT_EQ(question.find("VAR "), std::string::npos);
}

TEST(RulerOfficial, EveryTaskHasAContextQuestionSplit) {
  for (const std::string task : {"niah_single_1", "niah_multikey_1", "niah_multivalue", "vt", "cwe", "fwe"})
    for (const std::string tmpl : {"base", "meta-llama3"}) {
      const auto& tok = tmpl == "base" ? std::string("llama2") : std::string("llama3");
      const auto s = tokenizers().data.generate(task, 2048, 1, 42, tokenizers().counter(tok), with_template(tmpl))[0];
      EXPECT_GE(s.context_end, 0) << task;
      EXPECT_EQ(s.context_begin, static_cast<int64_t>(ruler_model_template(tmpl).head().size())) << task;
      EXPECT_LT(s.context_begin, s.context_end);
      const std::string question = s.input.substr(static_cast<size_t>(s.context_end));
      EXPECT_TRUE(question.find("Question:") != std::string::npos || question.find("What ") != std::string::npos)
          << task << ": " << question;
    }
}

// cwe: the few-shot is a whole wrapped exchange with its answer, joined by a single "\n".
TEST(RulerOfficial, CweFewShotIsAWholeWrappedExchange) {
  const auto s = tokenizers().data.generate("cwe", 4096, 1, 42, tokenizers().counter("llama2"), with_template("meta-chat"))[0];
  EXPECT_EQ(occurrences(s.input, "[INST] Below is a numbered list of words."), 2u);
  EXPECT_EQ(occurrences(s.input, "[/INST] Answer: The top 10 words that appear most often in the list are: 1. "), 1u);
  EXPECT_TRUE(std::regex_search(s.input, std::regex(R"( 10\. [a-z-]+\n\[INST\] Below is a numbered list)"))) << s.input.substr(0, 300);
  EXPECT_TRUE(ends_with(s.input, "Question: What are the 10 most common words in the above list? [/INST]"));
  EXPECT_EQ(s.answer_prefix, " Answer: The top 10 words that appear most often in the list are:");
}

// vt: noise lines joined by one "\n"; the ICL example is the largest that fits 500 tokens
// (bare task template, answered), and its names and value are drawn again for every sample.
TEST(RulerOfficial, VtIclExampleAndNoiseLinesFollowTheScript) {
  auto counter = tokenizers().counter("llama2");
  const auto s = tokenizers().data.generate("vt", 4096, 2, 42, counter, with_template("base"));
  const std::string noise = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
  for (const auto& x : s) {
    EXPECT_NE(x.input.find(noise + "\n" + noise + "\n"), std::string::npos);
    EXPECT_EQ(x.input.find(noise + "\n\n"), std::string::npos);
    const size_t second = x.input.find("Memorize and track", 1);
    ASSERT_NE(second, std::string::npos);
    const std::string icl = x.input.substr(0, second);  // example + its answer + "\n" + "\n"
    const int64_t icl_tokens = counter(icl.substr(0, icl.size() - 1));
    EXPECT_LE(icl_tokens, 500 + 20);  // the 500-token example plus its 5 answers
    const int64_t lines = static_cast<int64_t>(occurrences(icl, noise));
    EXPECT_GE(lines, 10);
    // what the search sized (template + answer prefix, no answer) fits 500 tokens, and one more
    // noise line would not have: the example is the search's largest
    const std::string searched = icl.substr(0, icl.rfind("they are: ") + 10);
    EXPECT_LE(counter(searched), 500);
    EXPECT_GT(counter(searched) + counter("\n" + noise), 500 - 2);
    std::smatch m;  // input + " " + answers: "they are:  ABC ..." (the prefix ends in a space)
    ASSERT_TRUE(std::regex_search(icl, m, std::regex(R"(they are:  ([A-Z]{3}) ([A-Z]{3}) ([A-Z]{3}) ([A-Z]{3}) ([A-Z]{3})\n)")));
    EXPECT_NE(icl.find("VAR " + std::string(m[2]) + " = VAR " + std::string(m[1])), std::string::npos);
    EXPECT_EQ(icl.find("12345"), std::string::npos);  // the placeholder value was replaced
  }
  const auto icl_of = [](const RulerSample& x) { return x.input.substr(0, x.input.find("Memorize and track", 1)); };
  EXPECT_NE(icl_of(s[0]), icl_of(s[1]));
  EXPECT_EQ(occurrences(icl_of(s[0]), noise), occurrences(icl_of(s[1]), noise));
}

namespace {

// A SQuAD-shaped file with many paragraphs, and a HotpotQA-shaped one with yes/no answers.
void write_qa_files(const std::string& squad_path, const std::string& hotpot_path) {
  std::ofstream squad(squad_path);
  squad << R"({"data": [)";
  for (int a = 0; a < 8; ++a) {
    if (a) squad << ",";
    squad << R"({"title": "t)" << a << R"(", "paragraphs": [)";
    for (int p = 0; p < 6; ++p) {
      if (p) squad << ",";
      squad << R"({"context": "Article )" << a << " paragraph " << p
            << R"( is about a river, a hill and a town far away; it says the colour is shade)" << a << p
            << R"(.", "qas": [{"question": "What colour does article )" << a << " paragraph " << p
            << R"( give?", "answers": [{"text": "shade)" << a << p << R"(", "answer_start": 0}], "is_impossible": false}]})";
    }
    squad << "]}";
  }
  squad << "]}";
  std::ofstream hotpot(hotpot_path);
  hotpot << "[";
  for (int q = 0; q < 4; ++q) {
    if (q) hotpot << ",";
    hotpot << R"({"question": "Is firm )" << q << R"( older than firm )" << q + 1 << R"(?", "answer": "yes", "context": [["Firm )" << q
           << R"(", ["Firm )" << q << R"( was founded in 1900."]], ["Firm )" << q + 1 << R"(", ["It was founded in 1950."]]]})";
  }
  hotpot << "]";
}

size_t gold_slot(const RulerSample& s) {  // the Document number holding the sample's answer
  const size_t at = s.input.find(s.outputs[0] + ".");
  const size_t doc = s.input.rfind("Document ", at);
  return std::stoul(s.input.substr(doc + 9));
}

}  // namespace

TEST(RulerOfficial, QaUsesOneDocumentOrderPerCountAndKeepsAnswersNotInTheText) {
  echokv::testing::TempDir tmp;
  write_qa_files(tmp.file("squad.json"), tmp.file("hotpot.json"));
  RulerData data(require_fixture("data/ruler"), tmp.file("squad.json"), tmp.file("hotpot.json"));
  auto counter = tokenizers().counter("llama2");
  const auto shared = data.generate("qa_1", 1024, 6, 42, counter, with_template("base"));
  ASSERT_EQ(shared.size(), 6u);
  std::set<size_t> slots, counts;
  for (const auto& s : shared) {
    slots.insert(gold_slot(s));
    counts.insert(occurrences(s.input, "Document "));
    EXPECT_LT(occurrences(s.input, "Document "), 48u);  // not every paragraph fits: a real choice of documents
  }
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(slots.size(), 1u) << "RULER shuffles every sample's documents with the same permutation";
  RulerGenerateOptions own = with_template("base");
  own.per_sample_document_order = true;
  std::set<size_t> own_slots;
  for (const auto& s : data.generate("qa_1", 1024, 6, 42, counter, own)) own_slots.insert(gold_slot(s));
  EXPECT_GT(own_slots.size(), 1u);
  // qa_2: "yes" appears nowhere in the documents; the sample is generated all the same
  const auto h = data.generate("qa_2", 1024, 3, 42, counter, with_template("base"));
  ASSERT_EQ(h.size(), 3u);
  for (const auto& s : h) {
    EXPECT_EQ(s.outputs, std::vector<std::string>{"yes"});
    EXPECT_EQ(s.input.find("yes"), std::string::npos);
  }
}

// `echokv-eval prepare`: RULER data in prepare.py's layout, from the command line.
TEST(RulerOfficial, PrepareCommandWritesRulersLayout) {
  echokv::testing::TempDir tmp;
  const auto run = echokv::testing::run_binary(
      "echokv-eval", "prepare --ruler-data " + require_fixture("data/ruler") + " --tokenizer " +
                         require_fixture("fixtures/tokenizers/llama2/tokenizer.model") + " --out " + tmp.file("data") +
                         " --tasks vt cwe --lengths 2048 --samples 2 --template meta-chat");
  ASSERT_EQ(run.status, 0) << run.out;
  for (const std::string task : {"vt", "cwe"}) {
    const auto records = echokv::read_jsonl(tmp.file("data/2048/" + task + ".jsonl"));
    ASSERT_EQ(records.size(), 2u) << task;
    for (const auto& r : records) {
      EXPECT_LE(r["length"].get<int64_t>(), 2048);
      EXPECT_EQ(r["model_template"], "meta-chat");
      EXPECT_TRUE(starts_with(r["input"].get<std::string>(), "[INST] "));
    }
  }
  const auto bad = echokv::testing::run_binary("echokv-eval", "prepare --ruler-data " + require_fixture("data/ruler") +
                                                                  " --tokenizer x --out y --lengths 10 --template chatml");
  EXPECT_NE(bad.status, 0);
}
