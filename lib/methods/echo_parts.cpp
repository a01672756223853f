#include "methods/echo_parts.h"

#include "core/error.h"

namespace echokv {

EchoParts EchoParts::parse(MethodOptions& m) {
  EchoParts p;
  p.echo_dir = m.get<std::string>("echo_dir", "");
  if (p.echo_dir.empty()) m.fail("needs echo_dir (on the command line: needs --echo DIR), a folder from echokv-train echo");
  p.cache.sink_tokens = m.get<int64_t>("sink_tokens", p.cache.sink_tokens);
  p.cache.recent_tokens = m.get<int64_t>("recent_tokens", p.cache.recent_tokens);
  p.cache.chunk_tokens = m.get<int64_t>("chunk_tokens", p.cache.chunk_tokens);
  if (p.cache.sink_tokens < 0 || p.cache.recent_tokens < 0 || p.cache.chunk_tokens <= 0)
    m.fail("sink_tokens and recent_tokens must be >= 0 and chunk_tokens > 0");
  return p;
}

nlohmann::json EchoParts::options_json() const {
  return {{"echo_dir", echo_dir},
          {"sink_tokens", cache.sink_tokens},
          {"recent_tokens", cache.recent_tokens},
          {"chunk_tokens", cache.chunk_tokens}};
}

void EchoParts::load(const MethodContext& context) {
  auto r = std::make_shared<Reconstructor>(Reconstructor::load(echo_dir, context.model_dir));
  r->to(context.model->device(), context.model->dtype());
  reconstructor = r;
}

std::unique_ptr<EchoCache> EchoParts::make_cache(const LlamaModel& model, int64_t capacity) const {
  if (!reconstructor) throw Error(echo_dir + ": the reconstructors were not loaded (prepare() not called)");
  EchoCacheOptions o = cache;
  o.capacity = std::max<int64_t>(1, capacity);
  return std::make_unique<EchoCache>(model.config(), model.rope(), reconstructor, 1, o, model.device(), model.dtype());
}

}  // namespace echokv
