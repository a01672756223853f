#include <iostream>

#include "core/error.h"
#include "core/files.h"
#include "echokv_eval/commands.h"
#include "tokenizer/tokenizer.h"

namespace echokv {

Command add_tokenize_command(CLI::App& app) {
  struct Opts {
    std::string model_dir, tokenizer_file, text, file;
    bool bos = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("tokenize", "text -> token ids with the model's tokenizer");
  auto* model = cmd->add_option("--model", o->model_dir, "model or tokenizer folder");
  auto* tok = cmd->add_option("--tokenizer", o->tokenizer_file, "tokenizer file (tokenizer.model / tokenizer.json)");
  model->excludes(tok);
  auto* text = cmd->add_option("--text", o->text, "text to encode");
  auto* file = cmd->add_option("--file", o->file, "file whose contents to encode");
  text->excludes(file);
  cmd->add_flag("--bos", o->bos, "prepend BOS");
  cmd->add_flag("--json", o->json, "print {\"ids\": [...]}");
  return {cmd, [o, text, file]() {
    if (o->model_dir.empty() && o->tokenizer_file.empty()) throw Error("tokenize: give --model DIR or --tokenizer FILE");
    if (text->count() == 0 && file->count() == 0) throw Error("tokenize: give --text TEXT or --file F");
    auto tokenizer = load_tokenizer(o->tokenizer_file.empty() ? o->model_dir : o->tokenizer_file);
    const std::string input = file->count() ? read_text_file(o->file) : o->text;
    auto ids = tokenizer->encode(input, o->bos);
    if (o->json) {
      std::cout << ids_to_json(ids) << std::endl;
    } else {
      for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? "," : "") << ids[i];
      std::cout << std::endl;
    }
    return 0;
  }};
}

}  // namespace echokv
