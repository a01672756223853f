#include <iostream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "echokv_eval/commands.h"
#include "core/files.h"
#include "model/generate.h"
#include "model/session.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/stream_decoder.h"

namespace echokv {

Command add_generate_command(CLI::App& app) {
  struct Opts {
    RuntimeFlags rt;
    std::string model_dir, ids_text, prompt, system, tokenizer_path, chat_template = "auto", stop_text;
    CacheFlags cache;
    bool greedy = false, sample = false, json = false, chat = false, no_knowledge_date = false;
    GenerateOptions gen;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("generate", "continue a prompt (token ids or text)");
  cmd->add_option("--model", o->model_dir, "HF model folder")->required();
  auto* ids = cmd->add_option("--ids", o->ids_text, "prompt token ids, e.g. 1,2,3");
  auto* prompt = cmd->add_option("--prompt", o->prompt, "prompt text (needs a tokenizer in the model folder)");
  ids->excludes(prompt);
  cmd->add_flag("--chat", o->chat, "wrap --prompt in the model's chat template");
  cmd->add_option("--system", o->system, "system prompt (with --chat)");
  cmd->add_option("--chat-template", o->chat_template, "auto | llama3 | mistral | llama2 | plain")->capture_default_str();
  cmd->add_flag("--no-knowledge-date", o->no_knowledge_date, "llama3: omit HF's 'Cutting Knowledge Date' system block");
  cmd->add_option("--tokenizer", o->tokenizer_path, "tokenizer file or folder (default: the model folder)");
  cmd->add_option("--max-new-tokens", o->gen.max_new_tokens, "tokens to generate")->capture_default_str();
  cmd->add_flag("--greedy", o->greedy, "greedy decoding (the default)");
  cmd->add_flag("--sample", o->sample, "sample instead of greedy");
  cmd->add_option("--temperature", o->gen.sampling.temperature, "sampling temperature")->capture_default_str();
  cmd->add_option("--top-k", o->gen.sampling.top_k, "keep the k most likely tokens (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", o->gen.sampling.top_p, "nucleus mass (1 = off)")->capture_default_str();
  cmd->add_option("--seed", o->gen.sampling.seed, "sampling seed")->capture_default_str();
  cmd->add_option("--stop-ids", o->stop_text, "stop token ids (default: chat stop ids or the config's eos ids)");
  cmd->add_option("--chunk", o->gen.prefill_chunk, "prefill chunk size")->capture_default_str();
  add_cache_flags(cmd, o->cache);
  cmd->add_flag("--json", o->json, "print one JSON object at the end: {\"ids\": [...], \"text\": ...}");
  add_runtime_flags(cmd, o->rt);
  return {cmd, [o, ids, prompt]() {
    if (ids->count() == 0 && prompt->count() == 0) throw Error("generate: give --ids or --prompt");
    if (o->greedy && o->sample) throw Error("--greedy and --sample are mutually exclusive");
    if (o->chat && prompt->count() == 0) throw Error("--chat needs --prompt");
    if (o->gen.max_new_tokens < 0) throw Error("generate: --max-new-tokens must be >= 0 (got " + std::to_string(o->gen.max_new_tokens) + ")");
    GenerateOptions gen = o->gen;
    gen.sampling.greedy = !o->sample;

    std::unique_ptr<Tokenizer> tokenizer;
    std::vector<int64_t> prompt_ids;
    ChatFormat format = ChatFormat::kPlain;
    if (prompt->count()) {
      tokenizer = load_tokenizer(o->tokenizer_path.empty() ? o->model_dir : o->tokenizer_path);
      format = o->chat_template == "auto" ? detect_chat_format(*tokenizer, o->model_dir) : parse_chat_format(o->chat_template);
      if (o->chat) {
        std::vector<ChatMessage> messages;
        if (!o->system.empty()) messages.push_back({"system", o->system});
        messages.push_back({"user", o->prompt});
        ChatOptions co;
        co.format = format;
        co.knowledge_date_header = !o->no_knowledge_date;
        prompt_ids = render_chat(*tokenizer, messages, co);
      } else {
        prompt_ids = tokenizer->encode(o->prompt, tokenizer->bos_id().has_value());
      }
    } else {
      prompt_ids = parse_id_list(o->ids_text);
      // Token ids in, text out when the model folder has a tokenizer (ids otherwise).
      const std::string dir = o->tokenizer_path.empty() ? o->model_dir : o->tokenizer_path;
      if (!o->tokenizer_path.empty() || file_exists(join_path(dir, "tokenizer.model")) || file_exists(join_path(dir, "tokenizer.json")))
        tokenizer = load_tokenizer(dir);
    }
    auto model = load_model_for_run(o->model_dir, o->rt.device, o->rt.dtype, o->rt.threads);
    if (tokenizer) check_tokenizer_fits(*model, *tokenizer, o->tokenizer_path.empty() ? o->model_dir : o->tokenizer_path);
    check_ids_in_vocab(*model, prompt_ids);
    if (!o->stop_text.empty()) gen.stop_ids = parse_id_list(o->stop_text, "--stop-ids");
    else if (tokenizer && o->chat) gen.stop_ids = chat_stop_ids(*tokenizer, format);
    else gen.stop_ids = model->config().eos_token_ids;

    std::unique_ptr<StreamDecoder> stream;
    if (tokenizer) stream = std::make_unique<StreamDecoder>(*tokenizer, prompt_ids.back());
    if (!o->json) {
      gen.on_token = [&](int64_t token) {
        if (stream) {
          if (std::find(gen.stop_ids.begin(), gen.stop_ids.end(), token) == gen.stop_ids.end())
            std::cout << stream->push(token) << std::flush;
        } else {
          std::cout << token << ' ' << std::flush;
        }
        return true;
      };
    }
    auto method = online_method(o->cache, *model, o->model_dir);
    auto cache = method->make_cache(*model, static_cast<int64_t>(prompt_ids.size()) + gen.max_new_tokens, static_cast<int64_t>(prompt_ids.size()));
    auto result = generate(*model, *cache, prompt_ids, gen);
    if (cache->bytes() < cache->full_bytes()) std::cerr << o->cache.kind << " cache: " << cache_report_line(*cache) << "\n";
    if (o->json) {
      nlohmann::json out = {{"ids", result.tokens}};
      if (tokenizer) out["text"] = tokenizer->decode(result.tokens);
      std::cout << out.dump() << std::endl;
    } else {
      if (stream) std::cout << stream->finish();
      std::cout << std::endl;
    }
    return 0;
  }};
}

}  // namespace echokv
