#include "eval/eval_runner.h"

#include "core/run_lock.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <set>
#include <unistd.h>

#include "cache/cache_factory.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/files.h"
#include "core/progress.h"
#include "eval/eval_report.h"
#include "eval/fidelity.h"
#include "eval/longbench_prompt.h"
#include "eval/niah.h"
#include "eval/prompt_split.h"
#include "eval/ruler_tasks.h"
#include "eval/ruler_template.h"
#include "io/jsonl.h"
#include "io/safetensors.h"
#include "methods/method.h"
#include "model/generate.h"
#include "model/session.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace echokv {
namespace {

namespace fs = std::filesystem;

// Keys of the records already in a predictions file; a torn last line (crash mid-append)
// is dropped by rewriting the file with the complete records.
std::set<std::string> finished_keys(const std::string& path) {
  std::set<std::string> keys;
  if (!file_exists(path)) return keys;
  const auto records = read_jsonl(path, true);
  const std::string text = read_text_file(path);
  if (!text.empty() && text.back() != '\n') {
    std::string clean;
    for (const auto& r : records) clean += r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    write_text_atomic(path, clean);
  }
  for (const auto& r : records)
    if (r.contains("key") && r["key"].is_string()) keys.insert(r["key"].get<std::string>());
  return keys;
}

template <typename T>
std::vector<T> load_or_generate(const std::string& path, const std::function<std::vector<T>()>& generate,
                                const std::function<T(const nlohmann::json&, const std::string&)>& parse) {
  if (file_exists(path)) {
    std::vector<T> out;
    const auto records = read_jsonl(path);
    for (size_t i = 0; i < records.size(); ++i) out.push_back(parse(records[i], path + ": record " + std::to_string(i + 1)));
    return out;
  }
  auto samples = generate();
  std::string text;
  for (const auto& s : samples) text += s.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  write_text_atomic(path, text);
  return samples;
}

// The first ceil(fraction x n) of n samples (at least one).
size_t fraction_of(size_t n, double fraction) {
  return std::min(n, std::max<size_t>(1, static_cast<size_t>(std::ceil(fraction * static_cast<double>(n) - 1e-9))));
}

struct WorkItem {
  std::string benchmark, key;
  std::function<nlohmann::json(const Method&)> run;  // returns the record (without key/benchmark)
};

class Progress {
 public:
  Progress(int64_t total, bool enabled) : total_(total), enabled_(enabled), start_(monotonic_seconds()) {}
  void step(const std::string& what) {
    ++done_;
    if (!enabled_) return;
    const double el = monotonic_seconds() - start_;
    const double eta = done_ ? el / done_ * (total_ - done_) : 0;
    std::fprintf(stderr, "[eval] %lld/%lld %s | %.1f s/item | elapsed %s | ETA %s\n", (long long)done_, (long long)total_,
                 what.c_str(), done_ ? el / done_ : 0.0, format_duration(el).c_str(), format_duration(eta).c_str());
  }

 private:
  int64_t total_, done_ = 0;
  bool enabled_;
  double start_;
};

// What every work item runs against: the config, the model, its tokenizer and chat form.
struct EvalSession {
  const EvalConfig& config;
  std::shared_ptr<LlamaModel> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null for token-id fidelity runs
  ChatOptions chat;
  std::vector<int64_t> stop_ids;

  explicit EvalSession(const EvalConfig& c) : config(c) {
    model = load_model_for_run(c.model, c.device, c.dtype, c.threads);
    // Token-id fidelity (e.g. stories260K, whose tokenizer is not available) needs no tokenizer.
    bool needs_tokenizer = c.ruler || c.niah || c.longbench || (c.fidelity && c.fidelity->source != "safetensors");
    for (const auto& m : c.methods) needs_tokenizer = needs_tokenizer || m.method->needs_tokenizer();
    if (!needs_tokenizer) return;
    tokenizer = load_tokenizer(c.model);
    check_tokenizer_fits(*model, *tokenizer, c.model);
    chat.format = c.chat_format == "auto" ? detect_chat_format(*tokenizer, c.model) : parse_chat_format(c.chat_format);
    chat.knowledge_date_header = c.llama3_date_header;
    stop_ids = chat_stop_ids(*tokenizer, chat.format);
    if (auto eos = tokenizer->eos_id()) stop_ids.push_back(*eos);
  }
  std::string data_file(const std::string& name) const { return join_path(join_path(config.out_dir, "data"), name); }
  std::string method_dir(const std::string& method) const {
    return join_path(join_path(config.out_dir, "predictions"), method);
  }
};

double bytes_ratio_of(const KVCache& cache) {
  return cache.full_bytes() > 0 ? static_cast<double>(cache.bytes()) / static_cast<double>(cache.full_bytes()) : 1.0;
}

// Greedy generation through the method's cache; returns the record: text (stop token
// excluded), sizes and timings.
nlohmann::json run_generation(const EvalSession& s, const Method& method,
                              const std::pair<std::vector<int64_t>, PromptSpan>& prompt, int64_t max_new,
                              const std::vector<int64_t>& extra_stops, int64_t min_new = 0) {
  const auto& ids = prompt.first;
  check_ids_in_vocab(*s.model, ids);
  auto prepared = method.prefill(*s.model, ids, prompt.second, static_cast<int64_t>(ids.size()) + max_new + 1,
                                 s.config.prefill_chunk);
  auto& cache = prepared.cache;
  const double prompt_ratio = bytes_ratio_of(*cache);
  GenerateOptions g;
  g.max_new_tokens = max_new;
  g.min_new_tokens = min_new;
  g.stop_ids = s.stop_ids;
  g.stop_ids.insert(g.stop_ids.end(), extra_stops.begin(), extra_stops.end());
  g.prefill_chunk = s.config.prefill_chunk;
  auto r = generate_from(*s.model, *cache, prepared.logits, g);
  r.prefill_seconds = prepared.prefill_seconds;
  std::vector<int64_t> toks = r.tokens;
  if (r.stop_reason == "stop_id" && !toks.empty()) toks.pop_back();
  nlohmann::json j;
  j["pred"] = s.tokenizer->decode(toks, true);
  j["input_tokens"] = ids.size();
  j["new_tokens"] = toks.size();
  j["bytes_ratio"] = bytes_ratio_of(*cache);
  j["prompt_bytes_ratio"] = prompt_ratio;
  j["prefill_seconds"] = r.prefill_seconds;
  j["scoring_seconds"] = prepared.scoring_seconds;
  if (prepared.context_kept >= 0) j["context_pairs_kept"] = prepared.context_kept;
  if (prepared.scores_reused) j["scores_reused"] = true;
  if (!prepared.size_note.empty()) j["size_note"] = prepared.size_note;
  j["decode_seconds"] = r.decode_seconds;
  return j;
}

// RULER: every task x length, samples generated once into data/ruler-<task>-<len>.jsonl.
void add_ruler_items(const EvalSession& s, std::vector<WorkItem>& items) {
  const auto& c = s.config;
  RulerData data(c.ruler->data_dir, c.ruler->squad_path, c.ruler->hotpotqa_path);
  RulerGenerateOptions ruler_options;
  ruler_options.model_template = c.ruler->model_template == "auto" ? ruler_template_name_for(s.chat.format) : c.ruler->model_template;
  ruler_options.per_sample_document_order = c.ruler->per_sample_document_order;
  (void)ruler_model_template(ruler_options.model_template);  // an unknown name fails here, before any work
  const RulerTokenCounter ruler_count = [&](const std::string& text) {
    return static_cast<int64_t>(encode_with_control_text(*s.tokenizer, text).size());
  };
  std::vector<std::string> tasks = c.ruler->tasks.empty() ? data.task_names() : c.ruler->tasks;
  for (const auto& task : tasks) {
    if (const auto why = data.unavailable_reason(task); !why.empty()) {
      std::fprintf(stderr, "[eval] skipping RULER %s: %s\n", task.c_str(), why.c_str());
      continue;
    }
    for (int64_t len : c.ruler->lengths) {
      const std::string path = s.data_file("ruler-" + task + "-" + std::to_string(len) + ".jsonl");
      std::vector<RulerSample> samples;
      try {
        samples = load_or_generate<RulerSample>(
            path, [&] { return data.generate(task, len, c.ruler->samples, c.seed, ruler_count, ruler_options); },
            RulerSample::from_json);
      } catch (const Error& e) {  // e.g. a target too short for the task: skip it, run the rest
        std::fprintf(stderr, "[eval] skipping RULER %s at %lld: %s\n", task.c_str(), (long long)len, e.what());
        continue;
      }
      for (const auto& sample : samples)
        if (sample.model_template != ruler_options.model_template)
          fail(path, "generated with RULER template '" + sample.model_template + "', the config asks for '" +
                         ruler_options.model_template + "'; delete the file to generate it again");
      samples.resize(fraction_of(samples.size(), c.fraction));
      for (const auto& sample : samples)
        items.push_back({"ruler", task + "/" + std::to_string(len) + "/" + std::to_string(sample.index),
                         [&s, sample](const Method& method) {
                           auto j = run_generation(s, method, ruler_prompt(*s.tokenizer, sample), sample.tokens_to_generate, {});
                           j["task"] = sample.task;
                           j["index"] = sample.index;
                           j["length"] = sample.max_length;
                           j["sample_length"] = sample.length;
                           j["outputs"] = sample.outputs;
                           return j;
                         }});
    }
  }
}

// NIAH: the grid of lengths x depths x samples per cell, generated once into data/niah.jsonl.
void add_niah_items(const EvalSession& s, std::vector<WorkItem>& items) {
  const auto& c = s.config;
  const std::string path = s.data_file("niah.jsonl");
  auto samples = load_or_generate<NiahSample>(path, [&] { return generate_niah(*c.niah, *s.tokenizer, s.chat, c.seed); },
                                              NiahSample::from_json);
  for (const auto& sample : samples)
    if (sample.setup != c.niah->setup)
      fail(path, "holds NIAH samples of setup '" + sample.setup + "', the config asks for '" + c.niah->setup +
                     "'; delete the file to generate it again");
  const int64_t per_cell = static_cast<int64_t>(fraction_of(static_cast<size_t>(c.niah->samples_per_cell), c.fraction));
  for (const auto& sample : samples) {
    if (sample.sample >= per_cell) continue;
    items.push_back({"niah", sample.key(), [&s, sample](const Method& method) {
                       auto j = run_generation(s, method, niah_prompt(*s.tokenizer, s.chat, sample), sample.tokens_to_generate, {});
                       j["setup"] = sample.setup;
                       j["metric"] = sample.metric;
                       j["length"] = sample.length;
                       j["depth"] = sample.depth;
                       j["sample"] = sample.sample;
                       j["outputs"] = sample.outputs;
                       j["needle"] = sample.needle;
                       j["score"] = niah_score(sample, j["pred"].get<std::string>());
                       return j;
                     }});
  }
}

// LongBench: the user's data files, prompts as the official pred.py builds them.
void add_longbench_items(const EvalSession& s, std::vector<WorkItem>& items) {
  const auto& c = s.config;
  auto prompts = std::make_shared<LongBenchPrompts>(LongBenchPrompts::load(c.longbench->config_dir));
  const auto budget = resolve_longbench_budget(*c.longbench, s.model->config().max_position_embeddings);
  const bool longbench_form = c.longbench->chat_form == "longbench" ||
                              (c.longbench->chat_form == "auto" && s.chat.format == ChatFormat::kLlama2);
  write_text_atomic(join_path(c.out_dir, "longbench-settings.json"),
                    nlohmann::json({{"max_length", budget.max_length}, {"max_length_source", budget.source},
                                    {"chat_form", longbench_form ? "longbench (pred.py build_chat)" : "hf chat template"},
                                    {"chat_format", chat_format_name(s.chat.format)}})
                            .dump(2) +
                        "\n");
  for (const auto& dataset : c.longbench->datasets) {
    const std::string path = join_path(c.longbench->data_dir, dataset + ".jsonl");
    if (!file_exists(path)) fail(path, "LongBench data for '" + dataset + "' not found (download it yourself; not shipped)");
    auto records = read_jsonl(path);
    if (c.longbench->samples > 0 && static_cast<int64_t>(records.size()) > c.longbench->samples)
      records.resize(static_cast<size_t>(c.longbench->samples));
    records.resize(fraction_of(records.size(), c.fraction));
    for (size_t i = 0; i < records.size(); ++i) {
      const auto record = records[i];
      const std::string where = path + ": record " + std::to_string(i + 1);
      if (!record.contains("length") || !record["length"].is_number_integer())
        fail(where, "no integer 'length' (LongBench records carry the context length; LongBench-E buckets by it)");
      items.push_back({"longbench", dataset + "/" + std::to_string(i),
                       [&s, prompts, record, dataset, where, budget, longbench_form](const Method& method) {
                         const auto in = build_longbench_input(*prompts, dataset, record, *s.tokenizer, s.chat,
                                                               budget.max_length, where, longbench_form);
                         auto j = run_generation(s, method, {in.ids, in.span}, in.max_new_tokens, in.extra_stop_ids,
                                                 in.min_new_tokens);
                         j["dataset"] = dataset;
                         j["answers"] = record.value("answers", nlohmann::json::array());
                         j["all_classes"] = record.value("all_classes", nlohmann::json());
                         j["length"] = record["length"];
                         j["_id"] = record.value("_id", "");
                         return j;
                       }});
    }
  }
}

// The fidelity sequences of token ids: rows of a safetensors tensor, or text (a file or JSONL
// texts) tokenized into one stream and cut into sequences.
std::vector<std::vector<int64_t>> fidelity_sequences(const EvalSession& s) {
  const auto& f = *s.config.fidelity;
  std::vector<std::vector<int64_t>> seqs;
  if (f.source == "safetensors") {
    auto tensors = load_safetensors(f.path);
    auto it = tensors.find(f.tensor);
    if (it == tensors.end()) fail(f.path, "no tensor '" + f.tensor + "'");
    auto t = it->second.to(torch::kInt64);
    if (t.dim() != 2) fail(f.path, "tensor '" + f.tensor + "' must be [sequences, tokens]");
    for (int64_t i = 0; i < std::min<int64_t>(t.size(0), f.sequences); ++i) {
      auto row = t[i].slice(0, 0, std::min<int64_t>(t.size(1), f.seq_len)).contiguous();
      seqs.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
    }
  } else {
    std::vector<std::string> texts = f.source == "jsonl" ? read_jsonl_texts(f.path) : std::vector<std::string>{read_text_file(f.path)};
    std::vector<int64_t> stream;
    for (const auto& t : texts) {
      auto ids = s.tokenizer->encode(t, s.tokenizer->bos_id().has_value());
      stream.insert(stream.end(), ids.begin(), ids.end());
      if (static_cast<int64_t>(stream.size()) >= f.sequences * f.seq_len) break;
    }
    for (int64_t i = 0; i < f.sequences && (i + 1) * f.seq_len <= static_cast<int64_t>(stream.size()); ++i)
      seqs.emplace_back(stream.begin() + i * f.seq_len, stream.begin() + (i + 1) * f.seq_len);
  }
  if (seqs.empty()) fail(f.path, "fidelity source gives no sequence of " + std::to_string(f.seq_len) + " tokens");
  seqs.resize(fraction_of(seqs.size(), s.config.fraction));
  return seqs;
}

// One fidelity sequence through a method against the full cache's logits (computed once per
// sequence; items of all methods for a sequence run back to back).
struct FidelityReference {
  std::vector<std::vector<int64_t>> sequences;
  size_t cached = SIZE_MAX;
  torch::Tensor logits;  // the full cache's logits of sequences[cached]
};

nlohmann::json run_fidelity(const EvalSession& s, FidelityReference& ref, size_t i, const Method& method) {
  const auto& f = *s.config.fidelity;
  const auto& ids = ref.sequences[i];
  check_ids_in_vocab(*s.model, ids);
  if (ref.cached != i) {
    auto full = make_full_cache(*s.model, static_cast<int64_t>(ids.size()));
    ref.logits = sequence_logits(*s.model, ids, f.chunk, *full);
    ref.cached = i;
  }
  const int64_t n = static_cast<int64_t>(ids.size()), ctx = f.context_tokens;
  FidelityStats st;
  std::unique_ptr<KVCache> cache;
  double prompt_ratio = -1;
  if (ctx > 0) {  // prefill (and compress) the context, then score the rest
    PromptSpan span;
    span.context_begin = s.tokenizer && s.tokenizer->bos_id() && ids[0] == *s.tokenizer->bos_id() ? 1 : 0;
    span.context_end = ctx;
    auto prepared = method.prefill(*s.model, std::vector<int64_t>(ids.begin(), ids.begin() + ctx), span, n, f.chunk);
    cache = std::move(prepared.cache);
    prompt_ratio = static_cast<double>(cache->bytes()) / cache->full_bytes();
    auto rest = sequence_logits(*s.model, std::vector<int64_t>(ids.begin() + ctx, ids.end()), f.chunk, *cache);
    auto logits = torch::cat({prepared.logits.to(torch::kCPU).view({1, -1}), rest}, 0);  // positions ctx-1 .. n-1
    st.add(ref.logits.narrow(0, ctx - 1, n - ctx + 1), logits, std::vector<int64_t>(ids.begin() + ctx - 1, ids.end()));
  } else {
    cache = method.make_cache(*s.model, n, n);
    st.add(ref.logits, sequence_logits(*s.model, ids, f.chunk, *cache), ids);
  }
  auto j = st.to_json();
  j["bytes_ratio"] = bytes_ratio_of(*cache);
  j["prompt_bytes_ratio"] = prompt_ratio >= 0 ? prompt_ratio : j["bytes_ratio"].get<double>();
  return j;
}

void add_fidelity_items(const EvalSession& s, std::vector<WorkItem>& items) {
  auto ref = std::make_shared<FidelityReference>();
  ref->sequences = fidelity_sequences(s);
  for (size_t i = 0; i < ref->sequences.size(); ++i)
    items.push_back({"fidelity", "seq/" + std::to_string(i),
                     [&s, ref, i](const Method& method) { return run_fidelity(s, *ref, i, method); }});
}

// Runs what is missing, sample by sample and method by method (so the fidelity items of all
// methods share the full logits), appending each record as it finishes.
void run_missing_items(const EvalSession& s, const std::vector<WorkItem>& items, const EvalRunOptions& options) {
  const auto& c = s.config;
  std::map<std::string, std::map<std::string, std::set<std::string>>> done;  // method -> benchmark -> keys
  int64_t todo = 0;
  for (const auto& m : c.methods)
    for (const auto& b : {"ruler", "niah", "longbench", "fidelity"})
      done[m.name][b] = finished_keys(join_path(s.method_dir(m.name), std::string(b) + ".jsonl"));
  for (const auto& it : items)
    for (const auto& m : c.methods) todo += done[m.name][it.benchmark].count(it.key) ? 0 : 1;
  // What the methods get once, before any prompt (KVzip's score memo lives in `shared`).
  MethodContext shared_context;
  shared_context.model = s.model.get();
  shared_context.model_dir = c.model;
  shared_context.tokenizer = s.tokenizer.get();
  shared_context.chat = s.chat;
  shared_context.prefill_chunk = c.prefill_chunk;
  for (const auto& m : c.methods) {
    MethodContext context = shared_context;
    context.artifacts_dir = s.method_dir(m.name);
    m.method->prepare(context);
  }
  Progress progress(todo, options.progress);
  if (options.progress)
    std::fprintf(stderr, "[eval] %zu samples x %zu methods: %lld to run\n", items.size(), c.methods.size(), (long long)todo);
  for (const auto& it : items) {
    for (const auto& m : c.methods) {
      if (done[m.name][it.benchmark].count(it.key)) continue;
      const double t0 = monotonic_seconds();
      nlohmann::json record;
      try {
        record = it.run(*m.method);
      } catch (const Error& e) {  // this method cannot run this sample: record why, go on
        record = {{"error", e.what()}};
        std::fprintf(stderr, "[eval] %s %s %s: %s\n", m.name.c_str(), it.benchmark.c_str(), it.key.c_str(), e.what());
      }
      record["benchmark"] = it.benchmark;
      record["key"] = it.key;
      record["method"] = m.name;
      record["seconds"] = monotonic_seconds() - t0;
      append_jsonl(join_path(s.method_dir(m.name), it.benchmark + ".jsonl"), record);
      progress.step(m.name + " " + it.benchmark + " " + it.key);
    }
  }
}

}  // namespace

void run_evaluation(const EvalConfig& c, const EvalRunOptions& options) {
  const RunLock lock(c.out_dir, "evaluation");  // one run per out_dir: two would write every prediction twice
  fs::create_directories(join_path(c.out_dir, "data"));
  for (const auto& m : c.methods) fs::create_directories(join_path(join_path(c.out_dir, "predictions"), m.name));
  write_text_atomic(join_path(c.out_dir, "config.yaml"), c.yaml);

  const EvalSession session(c);
  std::vector<WorkItem> items;
  if (c.ruler) add_ruler_items(session, items);
  if (c.niah) add_niah_items(session, items);
  if (c.longbench) add_longbench_items(session, items);
  if (c.fidelity) add_fidelity_items(session, items);
  if (!options.score_only) run_missing_items(session, items, options);
  write_eval_report(c);
  std::fprintf(stderr, "[eval] results: %s (report), %s (scores with CIs), %s (per-sample JSONL)\n",
               join_path(c.out_dir, "report.md").c_str(), join_path(c.out_dir, "metrics.json").c_str(),
               join_path(c.out_dir, "predictions").c_str());
}

}  // namespace echokv
