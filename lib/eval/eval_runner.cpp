#include "eval/eval_runner.h"

#include <cmath>
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
#include "train/corpus.h"

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

}  // namespace

void run_evaluation(const EvalConfig& c, const EvalRunOptions& options) {
  fs::create_directories(join_path(c.out_dir, "data"));
  for (const auto& m : c.methods) fs::create_directories(join_path(join_path(c.out_dir, "predictions"), m.name));
  write_text_atomic(join_path(c.out_dir, "config.yaml"), c.yaml);

  auto model = load_model_for_run(c.model, c.device, c.dtype, c.threads);
  // Token-id fidelity (e.g. stories260K, whose tokenizer is not available) needs no tokenizer.
  bool needs_tokenizer = c.ruler || c.niah || c.longbench || (c.fidelity && c.fidelity->source != "safetensors");
  for (const auto& m : c.methods) needs_tokenizer = needs_tokenizer || m.method->needs_tokenizer();
  std::unique_ptr<Tokenizer> tokenizer = needs_tokenizer ? load_tokenizer(c.model) : nullptr;
  ChatOptions chat;
  std::vector<int64_t> stop_ids;
  if (tokenizer) {
    chat.format = c.chat_format == "auto" ? detect_chat_format(*tokenizer, c.model) : parse_chat_format(c.chat_format);
    chat.knowledge_date_header = c.llama3_date_header;
    stop_ids = chat_stop_ids(*tokenizer, chat.format);
    if (auto eos = tokenizer->eos_id()) stop_ids.push_back(*eos);
  }
  // Greedy generation through the method's cache; returns text (stop token excluded) and stats.
  auto run_generation = [&](const Method& method, const std::pair<std::vector<int64_t>, PromptSpan>& prompt,
                            int64_t max_new, const std::vector<int64_t>& extra_stops, int64_t min_new = 0) {
    const auto& ids = prompt.first;
    check_ids_in_vocab(*model, ids);
    auto prepared = method.prefill(*model, ids, prompt.second, static_cast<int64_t>(ids.size()) + max_new + 1,
                                   c.prefill_chunk);
    auto& cache = prepared.cache;
    const double prompt_ratio = cache->full_bytes() > 0 ? static_cast<double>(cache->bytes()) / cache->full_bytes() : 1.0;
    GenerateOptions g;
    g.max_new_tokens = max_new;
    g.min_new_tokens = min_new;
    g.stop_ids = stop_ids;
    g.stop_ids.insert(g.stop_ids.end(), extra_stops.begin(), extra_stops.end());
    g.prefill_chunk = c.prefill_chunk;
    auto r = generate_from(*model, *cache, prepared.logits, g);
    r.prefill_seconds = prepared.prefill_seconds;
    std::vector<int64_t> toks = r.tokens;
    if (r.stop_reason == "stop_id" && !toks.empty()) toks.pop_back();
    nlohmann::json j;
    j["pred"] = tokenizer->decode(toks, true);
    j["input_tokens"] = ids.size();
    j["new_tokens"] = toks.size();
    j["bytes_ratio"] = cache->full_bytes() > 0 ? static_cast<double>(cache->bytes()) / static_cast<double>(cache->full_bytes()) : 1.0;
    j["prompt_bytes_ratio"] = prompt_ratio;
    j["prefill_seconds"] = r.prefill_seconds;
    j["scoring_seconds"] = prepared.scoring_seconds;
    if (prepared.context_kept >= 0) j["context_pairs_kept"] = prepared.context_kept;
    if (prepared.scores_reused) j["scores_reused"] = true;
    if (!prepared.size_note.empty()) j["size_note"] = prepared.size_note;
    j["decode_seconds"] = r.decode_seconds;
    return j;
  };

  // What the methods get once, before any prompt (KVzip's score memo lives in `shared`).
  MethodContext method_context;
  method_context.model = model.get();
  method_context.model_dir = c.model;
  method_context.tokenizer = tokenizer.get();
  method_context.chat = chat;
  method_context.prefill_chunk = c.prefill_chunk;
  auto prepare_method = [&](const EvalMethod& m) {
    MethodContext context = method_context;
    context.artifacts_dir = join_path(join_path(c.out_dir, "predictions"), m.name);
    m.method->prepare(context);
  };

  std::vector<WorkItem> items;
  // RULER
  if (c.ruler) {
    RulerData data(c.ruler->data_dir, c.ruler->squad_path, c.ruler->hotpotqa_path);
    RulerGenerateOptions ruler_options;
    ruler_options.model_template = c.ruler->model_template == "auto" ? ruler_template_name_for(chat.format) : c.ruler->model_template;
    ruler_options.per_sample_document_order = c.ruler->per_sample_document_order;
    (void)ruler_model_template(ruler_options.model_template);  // an unknown name fails here, before any work
    const RulerTokenCounter ruler_count = [&](const std::string& text) {
      return static_cast<int64_t>(encode_with_control_text(*tokenizer, text).size());
    };
    std::vector<std::string> tasks = c.ruler->tasks.empty() ? data.task_names() : c.ruler->tasks;
    for (const auto& task : tasks) {
      if (const auto why = data.unavailable_reason(task); !why.empty()) {
        std::fprintf(stderr, "[eval] skipping RULER %s: %s\n", task.c_str(), why.c_str());
        continue;
      }
      for (int64_t len : c.ruler->lengths) {
        const std::string path = join_path(join_path(c.out_dir, "data"), "ruler-" + task + "-" + std::to_string(len) + ".jsonl");
        std::vector<RulerSample> samples;
        try {
          samples = load_or_generate<RulerSample>(
              path, [&] { return data.generate(task, len, c.ruler->samples, c.seed, ruler_count, ruler_options); },
              RulerSample::from_json);
        } catch (const Error& e) {  // e.g. a target too short for the task: skip it, run the rest
          std::fprintf(stderr, "[eval] skipping RULER %s at %lld: %s\n", task.c_str(), (long long)len, e.what());
          continue;
        }
        for (const auto& s : samples)
          if (s.model_template != ruler_options.model_template)
            fail(path, "generated with RULER template '" + s.model_template + "', the config asks for '" +
                           ruler_options.model_template + "'; delete the file to generate it again");
        samples.resize(fraction_of(samples.size(), c.fraction));
        for (const auto& s : samples) {
          items.push_back({"ruler", task + "/" + std::to_string(len) + "/" + std::to_string(s.index),
                           [&, s](const Method& method) {
                             auto j = run_generation(method, ruler_prompt(*tokenizer, s), s.tokens_to_generate, {});
                             j["task"] = s.task;
                             j["index"] = s.index;
                             j["length"] = s.max_length;
                             j["sample_length"] = s.length;
                             j["outputs"] = s.outputs;
                             return j;
                           }});
        }
      }
    }
  }
  // NIAH
  if (c.niah) {
    const std::string path = join_path(join_path(c.out_dir, "data"), "niah.jsonl");
    auto samples = load_or_generate<NiahSample>(path, [&] { return generate_niah(*c.niah, *tokenizer, chat, c.seed); },
                                                NiahSample::from_json);
    for (const auto& s : samples)
      if (s.setup != c.niah->setup)
        fail(path, "holds NIAH samples of setup '" + s.setup + "', the config asks for '" + c.niah->setup +
                       "'; delete the file to generate it again");
    const int64_t per_cell = static_cast<int64_t>(fraction_of(static_cast<size_t>(c.niah->samples_per_cell), c.fraction));
    for (const auto& s : samples) {
      if (s.sample >= per_cell) continue;
      items.push_back({"niah", s.key(), [&, s](const Method& method) {
                         auto j = run_generation(method, niah_prompt(*tokenizer, chat, s), s.tokens_to_generate, {});
                         j["setup"] = s.setup;
                         j["metric"] = s.metric;
                         j["length"] = s.length;
                         j["depth"] = s.depth;
                         j["sample"] = s.sample;
                         j["outputs"] = s.outputs;
                         j["needle"] = s.needle;
                         j["score"] = niah_score(s, j["pred"].get<std::string>());
                         return j;
                       }});
    }
  }
  // LongBench
  std::shared_ptr<LongBenchPrompts> lb_prompts;
  if (c.longbench) {
    lb_prompts = std::make_shared<LongBenchPrompts>(LongBenchPrompts::load(c.longbench->config_dir));
    const auto budget = resolve_longbench_budget(*c.longbench, model->config().max_position_embeddings);
    const bool longbench_form = c.longbench->chat_form == "longbench" ||
                                (c.longbench->chat_form == "auto" && chat.format == ChatFormat::kLlama2);
    write_text_atomic(join_path(c.out_dir, "longbench-settings.json"),
                      nlohmann::json({{"max_length", budget.max_length}, {"max_length_source", budget.source},
                                      {"chat_form", longbench_form ? "longbench (pred.py build_chat)" : "hf chat template"},
                                      {"chat_format", chat_format_name(chat.format)}})
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
                         [&, record, dataset, where, budget, longbench_form](const Method& method) {
                           const auto in = build_longbench_input(*lb_prompts, dataset, record, *tokenizer, chat,
                                                                 budget.max_length, where, longbench_form);
                           auto j = run_generation(method, {in.ids, in.span}, in.max_new_tokens, in.extra_stop_ids,
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
  // Fidelity: sequences of token ids; the full cache's logits are the reference.
  std::vector<std::vector<int64_t>> fidelity_seqs;
  if (c.fidelity) {
    const auto& f = *c.fidelity;
    if (f.source == "safetensors") {
      auto tensors = load_safetensors(f.path);
      auto it = tensors.find(f.tensor);
      if (it == tensors.end()) fail(f.path, "no tensor '" + f.tensor + "'");
      auto t = it->second.to(torch::kInt64);
      if (t.dim() != 2) fail(f.path, "tensor '" + f.tensor + "' must be [sequences, tokens]");
      for (int64_t i = 0; i < std::min<int64_t>(t.size(0), f.sequences); ++i) {
        auto row = t[i].slice(0, 0, std::min<int64_t>(t.size(1), f.seq_len)).contiguous();
        fidelity_seqs.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
      }
    } else {
      std::vector<std::string> texts = f.source == "jsonl" ? read_jsonl_texts(f.path) : std::vector<std::string>{read_text_file(f.path)};
      std::vector<int64_t> stream;
      for (const auto& t : texts) {
        auto ids = tokenizer->encode(t, tokenizer->bos_id().has_value());
        stream.insert(stream.end(), ids.begin(), ids.end());
        if (static_cast<int64_t>(stream.size()) >= f.sequences * f.seq_len) break;
      }
      for (int64_t i = 0; i < f.sequences && (i + 1) * f.seq_len <= static_cast<int64_t>(stream.size()); ++i)
        fidelity_seqs.emplace_back(stream.begin() + i * f.seq_len, stream.begin() + (i + 1) * f.seq_len);
    }
    if (fidelity_seqs.empty()) fail(f.path, "fidelity source gives no sequence of " + std::to_string(f.seq_len) + " tokens");
    fidelity_seqs.resize(fraction_of(fidelity_seqs.size(), c.fraction));
  }
  std::map<size_t, torch::Tensor> full_logits_cache;  // sequence -> full-cache logits (one at a time)
  for (size_t i = 0; i < fidelity_seqs.size(); ++i) {
    items.push_back({"fidelity", "seq/" + std::to_string(i), [&, i](const Method& method) {
                       const auto& ids = fidelity_seqs[i];
                       check_ids_in_vocab(*model, ids);
                       if (!full_logits_cache.count(i)) {
                         full_logits_cache.clear();
                         auto full = make_full_cache(*model, static_cast<int64_t>(ids.size()));
                         full_logits_cache[i] = sequence_logits(*model, ids, c.fidelity->chunk, *full);
                       }
                       const int64_t n = static_cast<int64_t>(ids.size()), ctx = c.fidelity->context_tokens;
                       FidelityStats st;
                       std::unique_ptr<KVCache> cache;
                       double prompt_ratio = -1;
                       if (ctx > 0) {  // prefill (and compress) the context, then score the rest
                         PromptSpan span;
                         span.context_begin = tokenizer && tokenizer->bos_id() && ids[0] == *tokenizer->bos_id() ? 1 : 0;
                         span.context_end = ctx;
                         auto prepared = method.prefill(*model, std::vector<int64_t>(ids.begin(), ids.begin() + ctx), span, n,
                                                        c.fidelity->chunk);
                         cache = std::move(prepared.cache);
                         prompt_ratio = static_cast<double>(cache->bytes()) / cache->full_bytes();
                         auto rest = sequence_logits(*model, std::vector<int64_t>(ids.begin() + ctx, ids.end()), c.fidelity->chunk, *cache);
                         auto logits = torch::cat({prepared.logits.to(torch::kCPU).view({1, -1}), rest}, 0);  // positions ctx-1 .. n-1
                         st.add(full_logits_cache[i].narrow(0, ctx - 1, n - ctx + 1), logits,
                                std::vector<int64_t>(ids.begin() + ctx - 1, ids.end()));
                       } else {
                         cache = method.make_cache(*model, n, n);
                         st.add(full_logits_cache[i], sequence_logits(*model, ids, c.fidelity->chunk, *cache), ids);
                       }
                       auto j = st.to_json();
                       j["bytes_ratio"] = cache->full_bytes() > 0 ? static_cast<double>(cache->bytes()) / cache->full_bytes() : 1.0;
                       j["prompt_bytes_ratio"] = prompt_ratio >= 0 ? prompt_ratio : j["bytes_ratio"].get<double>();
                       return j;
                     }});
  }

  // Run what is missing, method by method (fidelity items of all methods share the full logits).
  if (!options.score_only) {
    std::map<std::string, std::map<std::string, std::set<std::string>>> done;  // method -> benchmark -> keys
    int64_t todo = 0;
    for (const auto& m : c.methods)
      for (const auto& b : {"ruler", "niah", "longbench", "fidelity"}) {
        done[m.name][b] = finished_keys(join_path(join_path(join_path(c.out_dir, "predictions"), m.name), std::string(b) + ".jsonl"));
      }
    for (const auto& it : items)
      for (const auto& m : c.methods) todo += done[m.name][it.benchmark].count(it.key) ? 0 : 1;
    for (const auto& m : c.methods) prepare_method(m);
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
        append_jsonl(join_path(join_path(join_path(c.out_dir, "predictions"), m.name), it.benchmark + ".jsonl"), record);
        progress.step(m.name + " " + it.benchmark + " " + it.key);
      }
    }
  }
  write_eval_report(c);
}

}  // namespace echokv
