// The project's own synthetic long-context tasks (deliberately not RULER's templates, so
// RULER stays a held-out format). Every sample is a token sequence of an exact length with a
// per-token loss weight; answers are spans the model must copy from earlier context:
//   needle   : "The <kind> of <adjective noun> is <value>." facts in a natural-text haystack,
//              distractor facts with other keys, then "Question: What is the <kind> of <key>?
//              Answer: The <kind> of <key> is <value>." Values are numbers, words or
//              uuid-like strings.
//   chain    : "Let <var> be <value>." ... "Let <var2> be <var>." ... asked for <var2>.
//   copy     : a passage, then "Once more, word for word:" and the passage again.
#pragma once
#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "train/token_corpus.h"

namespace echokv {

struct TaskSample {
  std::vector<int64_t> tokens;   // [T] starting with BOS
  std::vector<float> weights;    // [T] loss weight of predicting tokens[i] (weights[0] unused)
  std::vector<int64_t> answer_positions;  // positions of answer tokens (for exact-match scoring)
};

struct TaskOptions {
  float answer_weight = 5.0f;
  float copy_weight = 2.0f;
  int max_needles = 4;         // needle task: 1..max_needles facts (one asked)
  double chain_fraction = 0.2; // share of retrieval samples that are variable chains
};

class TaskGenerator {
 public:
  TaskGenerator(const Tokenizer& tokenizer, const TokenCorpus& haystack, std::vector<std::string> words,
                TaskOptions options);
  TaskSample text(std::mt19937_64& rng, int64_t length) const;
  // needles = 0: random count in 1..max_needles.
  TaskSample needle(std::mt19937_64& rng, int64_t length, int needles = 0) const;
  TaskSample chain(std::mt19937_64& rng, int64_t length) const;
  TaskSample copy(std::mt19937_64& rng, int64_t length) const;
  // One of the above by name: "text" | "retrieval" (needle or chain) | "copy".
  TaskSample make(const std::string& kind, std::mt19937_64& rng, int64_t length) const;

 private:
  std::string random_value(std::mt19937_64& rng) const;
  std::string random_key(std::mt19937_64& rng) const;
  // Splices `inserts` (tokenized facts) into a haystack, fills to `length` with the query
  // and answer at the end.
  TaskSample assemble(std::mt19937_64& rng, int64_t length, const std::vector<std::vector<int64_t>>& facts,
                      const std::vector<int64_t>& query, const std::vector<int64_t>& answer) const;
  std::vector<int64_t> enc(const std::string& s) const { return tokenizer_.encode(s); }

  const Tokenizer& tokenizer_;
  const TokenCorpus& haystack_;
  std::vector<std::string> words_;
  TaskOptions options_;
  int64_t bos_;
};

}  // namespace echokv
