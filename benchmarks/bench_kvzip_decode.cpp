// `echokv-bench kvzip-decode`: KVzip's costs on a random model of a realistic KV shape (8 KV
// heads x 128, as Llama-3-8B / Mistral-7B): the context-reconstruction scoring pass against
// the prefill it follows, and decode latency / stored bytes of the compacted per-head cache
// (and of the retain-mode masked cache) against the full cache, in one run. Random weights
// make the scores meaningless but the cost real: every chunk is scored as in the method.
// Decode latency is the median over the timed steps.
#include <algorithm>
#include <iostream>

#include <nlohmann/json.hpp>

#include "bench/machine.h"
#include "bench_commands.h"
#include "cache/cache_factory.h"
#include "compress/compacted_cache.h"
#include "compress/kvzip_eviction.h"
#include "compress/kvzip_scoring.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/runtime.h"
#include "model/generate.h"
#include "model/random_model.h"

namespace echokv {

void register_kvzip_decode_bench(CLI::App& app, int& threads) {
  struct Opts {
    ModelConfig cfg;
    std::vector<int64_t> contexts = {1024, 4096};
    std::vector<double> ratios = {0.7, 0.5, 0.3};
    int64_t decode_steps = 16, prefill_chunk = 512, question = 32;
    std::string out;
  };
  auto o = std::make_shared<Opts>();
  o->cfg = eight_b_shaped_layers();
  auto* cmd = app.add_subcommand("kvzip-decode", "KVzip: scoring vs prefill time, compacted/retain decode vs full, bytes");
  cmd->add_option("--layers", o->cfg.num_hidden_layers)->capture_default_str();
  cmd->add_option("--contexts", o->contexts, "context lengths")->delimiter(',')->capture_default_str();
  cmd->add_option("--ratios", o->ratios, "fractions of context pairs kept")->delimiter(',')->capture_default_str();
  cmd->add_option("--decode-steps", o->decode_steps)->capture_default_str();
  cmd->add_option("--question", o->question, "tokens after the context (kept)")->capture_default_str();
  cmd->add_option("--out", o->out, "write the JSON here too (atomically)");
  cmd->callback([o, &threads]() {
    const int used = configure_threads(threads);
    ModelConfig& cfg = o->cfg;
    cfg.max_position_embeddings = 1 << 20;
    auto model = LlamaModel::from_tensors(cfg, random_llama_tensors(cfg, 1), torch::kCPU, torch::kFloat32, "<bench>");
    torch::NoGradGuard ng;
    KvzipPrompts prompts;  // the official prompts' lengths in a Llama tokenizer
    for (int i = 0; i < 9; ++i) prompts.first.push_back(100 + i);
    for (int i = 0; i < 14; ++i) prompts.later.push_back(200 + i);
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t ctx : o->contexts) {
      const int64_t prefix = 1, total = prefix + ctx + o->question + o->decode_steps;
      auto ids_t = torch::randint(3, cfg.vocab_size, {total}, torch::kInt64);
      const std::vector<int64_t> ids(ids_t.data_ptr<int64_t>(), ids_t.data_ptr<int64_t>() + total);
      const std::vector<int64_t> head(ids.begin(), ids.begin() + prefix + ctx), context(ids.begin() + prefix, ids.begin() + prefix + ctx),
          question(ids.begin() + prefix + ctx, ids.begin() + prefix + ctx + o->question);
      auto full = make_full_cache(*model, total);
      double t0 = monotonic_seconds();
      prefill(*model, *full, head, o->prefill_chunk);
      const double prefill_s = monotonic_seconds() - t0;
      t0 = monotonic_seconds();
      const auto scores = kvzip_scores(*model, *full, prefix, context, prompts);
      const double scoring_s = monotonic_seconds() - t0;
      // Decode timing: question prefill, then single tokens, on a cache of the given kind.
      // Median of the per-step times: robust to this machine's occasional stalls.
      auto decode = [&](KVCache& cache) {
        prefill(*model, cache, question, o->prefill_chunk);
        std::vector<double> ms;
        for (int64_t i = 0; i < o->decode_steps; ++i) {
          ForwardOptions fo;
          fo.last_only = true;
          const double t1 = monotonic_seconds();
          model->forward(torch::tensor({ids[prefix + ctx + o->question + i]}).view({1, 1}), cache, fo);
          ms.push_back((monotonic_seconds() - t1) * 1000.0);
        }
        std::sort(ms.begin(), ms.end());
        return ms[ms.size() / 2];
      };
      auto row = [&](const std::string& method, double ratio, double ms, const KVCache& cache, double full_ms) {
        nlohmann::json r = {{"context", ctx},
                            {"method", method},
                            {"ratio", ratio},
                            {"prefill_seconds", prefill_s},
                            {"scoring_seconds", scoring_s},
                            {"scoring_vs_prefill", scoring_s / prefill_s},
                            {"decode_ms_per_token", ms},
                            {"decode_vs_full", full_ms > 0 ? ms / full_ms : 1.0},
                            {"stored_mib", double(cache.bytes()) / 1048576.0},
                            {"stored_vs_full", double(cache.bytes()) / double(cache.full_bytes())}};
        std::cerr << r.dump() << std::endl;
        rows.push_back(r);
      };
      double full_ms = 0;
      {
        auto plain = make_full_cache(*model, total);
        prefill(*model, *plain, head, o->prefill_chunk);
        full_ms = decode(*plain);
        row("full", 1.0, full_ms, *plain, full_ms);
      }
      for (double ratio : o->ratios) {
        const auto keep = kvzip_keep_pairs(scores, ratio, false);
        {
          CompactedCache compact(*full, model->rope(), prefix, keep, o->question + o->decode_steps);
          row("kvzip-compact", ratio, decode(compact), compact, full_ms);
        }
        {
          MaskedFullCache masked(make_full_cache(*model, total));
          prefill(*model, masked, head, o->prefill_chunk);
          masked.set_keep(prefix, keep);
          row("kvzip-retain", ratio, decode(masked), masked, full_ms);
        }
      }
    }
    nlohmann::json result = {{"bench", "kvzip-decode"},
                             {"environment", bench_environment(torch::kCPU, torch::kFloat32, used)},
                             {"threads", used},
                             {"model",
                              {{"layers", cfg.num_hidden_layers},
                               {"hidden", cfg.hidden_size},
                               {"heads", cfg.num_attention_heads},
                               {"kv_heads", cfg.num_key_value_heads},
                               {"head_dim", cfg.head_dim}}},
                             {"rows", rows}};
    std::cout << result.dump(2) << std::endl;
    if (!o->out.empty()) write_text_atomic(o->out, result.dump(2) + "\n");
  });
}

}  // namespace echokv
