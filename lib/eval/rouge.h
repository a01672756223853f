// ROUGE-L F as LongBench computes it: pltrdy `rouge` 1.0.1, Rouge().get_scores([hyp], [ref],
// avg=True)["rouge-l"]["f"], i.e. summary-level union LCS with exclusive=True (sets of word
// types), sentences split on ".", words split on " " after whitespace normalisation, no
// lowercasing or stemming. Where the reference raises (a text with no non-empty sentence),
// LongBench's scorer returns 0, and so does this.
#pragma once
#include <string>

namespace echokv {

double rouge_l_f(const std::string& hypothesis, const std::string& reference);

}  // namespace echokv
