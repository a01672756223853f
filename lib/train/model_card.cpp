#include "train/model_card.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "cache/cache_factory.h"
#include "model/generate.h"

namespace echokv {

std::vector<std::pair<std::string, std::string>> greedy_samples(LlamaModel& model, const Tokenizer& tokenizer,
                                                                const std::vector<std::string>& prompts,
                                                                int64_t max_new_tokens) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& p : prompts) {
    auto ids = tokenizer.encode(p, true);
    auto cache = make_full_cache(model, static_cast<int64_t>(ids.size()) + max_new_tokens);
    GenerateOptions opt;
    opt.max_new_tokens = max_new_tokens;
    if (auto eos = tokenizer.eos_id()) opt.stop_ids = {*eos};
    auto result = generate(model, *cache, ids, opt);
    std::vector<int64_t> all = {ids.back()};
    all.insert(all.end(), result.tokens.begin(), result.tokens.end());
    const std::string context = tokenizer.decode({ids.back()});
    std::string text = tokenizer.decode(all);
    out.push_back({p, text.substr(std::min(context.size(), text.size()))});
  }
  return out;
}

namespace {
std::string pct(const nlohmann::json& v) {
  if (!v.is_number()) return "-";
  std::ostringstream o;
  o << std::fixed << std::setprecision(1) << 100.0 * v.get<double>() << " %";
  return o.str();
}
}  // namespace

std::string model_card_markdown(const PretrainConfig& c, const nlohmann::json& eval, const nlohmann::json& summary,
                                const std::vector<std::pair<std::string, std::string>>& samples) {
  std::ostringstream md;
  const auto& m = c.model;
  md << "# " << c.name << "\n\n"
     << "A small Llama-architecture model trained from scratch by EchoKV-cpp on 2 CPU cores, as the "
        "project's testbed for KV-cache compression: big enough to have distinct, trained attention heads "
        "and to retrieve facts from its context, small enough to train here.\n\n"
     << "## Architecture\n\n"
     << "| | |\n|---|---|\n"
     << "| layers | " << m.num_hidden_layers << " |\n"
     << "| hidden | " << m.hidden_size << " |\n"
     << "| attention heads / KV heads | " << m.num_attention_heads << " / " << m.num_key_value_heads << " (GQA "
     << m.gqa_group() << ":1) |\n"
     << "| head_dim | " << m.head_dim << " |\n"
     << "| MLP (SwiGLU) | " << m.intermediate_size << " |\n"
     << "| vocabulary | " << m.vocab_size << " (SentencePiece BPE, byte fallback, digits split) |\n"
     << "| RoPE theta | " << m.rope_theta << " |\n"
     << "| trained context | up to " << c.curriculum.back().seq_len << " tokens |\n"
     << "| parameters | " << summary.value("parameters", int64_t{0}) << " (tied embeddings, float32) |\n\n"
     << "## Data\n\n"
     << "English text installed by Debian packages (`scripts/install-deps.sh`), cleaned of dictionary markup "
        "and grouped into documents of ~"
     << c.corpus.document_chars << " characters; every " << c.corpus.heldout_every
     << "th document is held out:\n\n";
  for (const auto& s : c.corpus.sources) md << "- " << s.name << ": `" << s.path << "` (" << s.format << ")\n";
  md << "\nMixed in, from the project's own generator (not RULER's templates, so RULER stays held out): "
        "needle facts (\"The <kind> of <key> is <value>.\", numbers / words / uuid-like values, up to "
     << c.tasks.max_needles << " facts with distractors) in natural-text haystacks with a question at the end, "
        "two-hop variable chains, and verbatim copy passages."
     << (c.has_ruler ? std::string(
            "\n\n**RULER-format tasks.** This model was also trained on samples in RULER's own format, made by "
            "the project's RULER generator (`lib/train/ruler_training.h`): the synthetic tasks (niah, vt, cwe, fwe) with "
            "training seeds (top bit set) and essay haystacks from the second part of the essays only; evaluation "
            "samples use other seeds and RULER's own haystack (the essays' first words), which training never read. "
            "Its RULER scores therefore measure what KV-cache compression destroys in a model that can do the "
            "tasks, not general long-context ability. Started from `" + c.init_from + "`.")
                    : std::string())
     << " Curriculum:\n\n"
     << "| steps until | sequence length | mix |\n|---|---|---|\n";
  for (const auto& st : c.curriculum) {
    md << "| " << st.until_step << " | " << st.seq_len << " | ";
    for (const auto& [k, v] : st.mix) md << k << " " << v << " ";
    md << "|\n";
  }
  const double hours = summary.value("trained_seconds", 0.0) / 3600.0;
  md << "\n## Training\n\n"
     << "```sh\nbuild/bin/echokv-train pretrain --config " << c.source << "\n```\n\n"
     << "AdamW (lr " << c.lr << ", betas " << c.beta1 << "/" << c.beta2 << ", weight decay " << c.weight_decay
     << "), " << c.warmup_steps << " warmup steps then cosine to " << c.min_lr_ratio << " x lr, gradient clip "
     << c.grad_clip << ", " << c.tokens_per_step << " tokens per step. Steps: " << summary.value("steps", int64_t{0})
     << "; tokens: " << summary.value("tokens_seen", int64_t{0}) << "; " << std::fixed
     << std::setprecision(2) << hours << " h of training-process wall time on 2 cores (in several resumed sittings, at times sharing the cores "
        "with builds; see `data/training/` for the measured rates).\n\n"
     << "## Quality (full cache, freshly generated held-out samples)\n\n"
     << "Held-out perplexity: **" << std::setprecision(2) << eval.value("heldout_ppl", 0.0) << "** (loss "
     << std::setprecision(4) << eval.value("heldout_loss", 0.0) << " nats/token over " << eval.value("heldout_tokens", 0)
     << " held-out tokens).\n\n"
     << "Retrieval, exact match of the whole answer under greedy decoding, haystacks from held-out text:\n\n"
     << "| context | single needle | 4 needles, ask 1 | two-hop chain |\n|---|---|---|---|\n";
  if (eval.contains("retrieval") && eval["retrieval"].contains("single_needle")) {
    std::vector<std::pair<long long, std::string>> lengths;  // numeric order, not the JSON keys' text order
    for (auto it = eval["retrieval"]["single_needle"].begin(); it != eval["retrieval"]["single_needle"].end(); ++it)
      lengths.emplace_back(std::stoll(it.key()), it.key());
    std::sort(lengths.begin(), lengths.end());
    for (const auto& [_, len] : lengths) {
      const auto& single = eval["retrieval"]["single_needle"][len];
      auto get = [&](const char* task) {
        return eval["retrieval"].contains(task) && eval["retrieval"][task].contains(len) ? eval["retrieval"][task][len]
                                                                                          : nlohmann::json();
      };
      md << "| " << len << " | " << pct(single) << " | " << pct(get("multi_needle_4")) << " | " << pct(get("chain"))
         << " |\n";
    }
  }
  md << "\n(" << c.eval_retrieval_samples << " samples per cell.)\n\n";
  if (eval.contains("ruler")) {  // the RULER probe: teacher-forced exact match of the answer = greedy exact match
    md << "RULER (held-out samples: evaluation seeds, RULER's haystack; exact match of the whole answer in the task "
          "examples' form under greedy decoding, "
       << eval.value("ruler_samples", int64_t{0}) << " samples per cell; `echokv-eval` scores RULER's own metric):\n\n| task |";
    std::vector<std::string> lens;
    for (const auto& [len, _] : eval["ruler_average"].items()) lens.push_back(len);
    std::sort(lens.begin(), lens.end(), [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
    for (const auto& L : lens) md << " " << L << " |";
    md << "\n|---|";
    for (size_t i = 0; i < lens.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& [task, by_len] : eval["ruler"].items()) {
      md << "| " << task << " |";
      for (const auto& L : lens) md << " " << pct(by_len.contains(L) ? by_len[L] : nlohmann::json()) << " |";
      md << "\n";
    }
    md << "| average |";
    for (const auto& L : lens) md << " " << pct(eval["ruler_average"][L]) << " |";
    md << "\n\n";
  }
  md << "## Greedy samples\n\n";
  for (const auto& [prompt, text] : samples) md << "- **" << prompt << "**" << text << "\n";
  md << "\n## Files\n\n`config.json` (HF LlamaForCausalLM), `model.safetensors`, `tokenizer.model`, "
        "`training_summary.json` (the numbers above, machine-readable).\n";
  return md.str();
}

}  // namespace echokv
