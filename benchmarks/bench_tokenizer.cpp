// `echokv-bench tokenizer`: encode throughput (MB/s) on a few MB of text, cold (empty piece
// cache) and warm (second pass), plus load time.
#include <chrono>
#include <iostream>

#include <nlohmann/json.hpp>

#include "bench/machine.h"
#include "bench_commands.h"
#include "core/error.h"
#include "core/files.h"
#include "tokenizer/tokenizer.h"

namespace echokv {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

void register_tokenizer_bench(CLI::App& app) {
  struct Opts {
    std::string tokenizer, text_file, out;
    int64_t max_bytes = 4 << 20;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("tokenizer", "encode throughput of a tokenizer");
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer file or folder")->required();
  cmd->add_option("--text-file", o->text_file, "text, or JSON with a \"text\" field (e.g. RULER's PaulGrahamEssays.json)")
      ->required();
  cmd->add_option("--max-bytes", o->max_bytes, "use at most this many bytes of the text")->capture_default_str();
  cmd->add_option("--out", o->out, "write the JSON here too (atomically)");
  cmd->callback([o]() {
    std::string text = read_text_file(o->text_file);
    if (!text.empty() && text.front() == '{') {
      auto j = nlohmann::json::parse(text);
      if (!j.contains("text") || !j["text"].is_string()) throw Error(o->text_file + ": JSON without a \"text\" string");
      text = j["text"].get<std::string>();
    }
    if (static_cast<int64_t>(text.size()) > o->max_bytes) {
      text.resize(o->max_bytes);
      while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xC0) == 0x80) text.pop_back();
      if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xC0) text.pop_back();
    }
    auto t0 = std::chrono::steady_clock::now();
    auto tok = load_tokenizer(o->tokenizer);
    const double load_s = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    auto ids = tok->encode(text);
    const double cold_s = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    auto again = tok->encode(text);
    const double warm_s = seconds_since(t0);
    if (again != ids) throw Error("encode is not deterministic");
    t0 = std::chrono::steady_clock::now();
    const bool round_trip = tok->decode(ids) == text;
    const double decode_s = seconds_since(t0);
    const double mb = text.size() / 1e6;
    nlohmann::json result = {{"environment", bench_environment(torch::kCPU, torch::kFloat32, 1)}, {"tokenizer", o->tokenizer}, {"kind", tok->kind()}, {"bytes", text.size()},
                             {"tokens", ids.size()}, {"load_seconds", load_s},
                             {"encode_cold_mb_per_s", mb / cold_s}, {"encode_warm_mb_per_s", mb / warm_s},
                             {"encode_cold_tokens_per_s", ids.size() / cold_s},
                             {"decode_mb_per_s", mb / decode_s}, {"round_trip", round_trip}};
    const std::string out = result.dump(2);
    std::cout << out << std::endl;
    if (!o->out.empty()) write_text_atomic(o->out, out + "\n");
  });
}

}  // namespace echokv
