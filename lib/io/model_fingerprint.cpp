#include "io/model_fingerprint.h"

#include <cstdio>

#include "core/files.h"
#include "io/checkpoint.h"
#include "model/config.h"

namespace echokv {

namespace {
void mix(uint64_t& h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
}
}  // namespace

std::string model_fingerprint(const std::string& model_dir) {
  uint64_t h = 1469598103934665603ULL;
  const std::string config = read_text_file(join_path(model_dir, "config.json"));
  mix(h, config.data(), config.size());
  const auto mc = ModelConfig::load(model_dir);
  auto ckpt = Checkpoint::open(model_dir);
  for (int64_t l = 0; l < mc.num_hidden_layers; ++l)
    for (const char* proj : {"k_proj", "v_proj"}) {
      const std::string name = "model.layers." + std::to_string(l) + ".self_attn." + proj + ".weight";
      auto t = ckpt.tensor(name).contiguous().view({-1});
      t = t.slice(0, 0, std::min<int64_t>(256, t.numel())).contiguous();
      mix(h, t.data_ptr(), size_t(t.numel() * t.element_size()));
    }
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

}  // namespace echokv
