// A short identity of a model checkpoint folder: FNV-1a 64 over config.json and, for every
// layer, the first stored bytes of the K and V projection weights (read through the mmap, so
// cheap for 8B models). Trained EchoKV reconstructors record it and refuse another model.
#pragma once
#include <string>

namespace echokv {

std::string model_fingerprint(const std::string& model_dir);

}  // namespace echokv
