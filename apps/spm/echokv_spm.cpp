// echokv-spm: the SentencePiece library itself, in a process without LibTorch (the two
// cannot share one: see README). Used to train tokenizers and as the reference the native
// SentencePiece reader is tested against.
//   echokv-spm encode --model M < texts.jsonl   (one JSON string per line -> one JSON id array per line)
//   echokv-spm decode --model M < ids.jsonl     (one JSON id array per line -> one JSON string per line)
//   echokv-spm train -- --input=... --model_prefix=... (spm_train flags)
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

int main(int argc, char** argv) {
  CLI::App app{"SentencePiece library helper (no LibTorch in this process)"};
  app.require_subcommand(1);
  std::string model;
  auto* enc = app.add_subcommand("encode", "JSONL strings on stdin -> JSONL id arrays on stdout");
  enc->add_option("--model", model)->required();
  auto* dec = app.add_subcommand("decode", "JSONL id arrays on stdin -> JSONL strings on stdout");
  dec->add_option("--model", model)->required();
  std::vector<std::string> train_args;
  auto* train = app.add_subcommand("train", "train a model; arguments after -- are spm_train flags");
  train->add_option("args", train_args, "spm_train flags")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (train->parsed()) {
      std::string joined;
      for (const auto& a : train_args) joined += (joined.empty() ? "" : " ") + a;
      const auto status = sentencepiece::SentencePieceTrainer::Train(joined);
      if (!status.ok()) {
        std::cerr << "echokv-spm: error: training failed: " << status.ToString() << std::endl;
        return 1;
      }
      return 0;
    }
    sentencepiece::SentencePieceProcessor sp;
    const auto status = sp.Load(model);
    if (!status.ok()) {
      std::cerr << "echokv-spm: error: " << model << ": " << status.ToString() << std::endl;
      return 1;
    }
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line);
      if (enc->parsed()) {
        std::vector<int> ids;
        sp.Encode(j.get<std::string>(), &ids);
        std::cout << nlohmann::json(ids).dump() << "\n";
      } else {
        std::string text;
        sp.Decode(j.get<std::vector<int>>(), &text);
        std::cout << nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "echokv-spm: error: " << e.what() << std::endl;
    return 1;
  }
}
