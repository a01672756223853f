#include "methods/registry.h"

#include "core/error.h"

namespace echokv {

// One line per method: X(kind, factory function defined in lib/methods/<kind>.cpp, summary).
#define ECHOKV_METHODS(X)                                                                          \
  X(full, make_full_method, "the uncompressed cache (reference)")                                  \
  X(echo, make_echo_method, "EchoKV: kept heads stored, the rest rebuilt by trained linear maps")  \
  X(low_rank, make_low_rank_method, "Palu-style low-rank keys and values (SVD of the projections)") \
  X(streaming, make_streaming_method, "StreamingLLM: attention sinks + a recent window")           \
  X(kvzip, make_kvzip_method, "KVzip: context reconstruction scores, query-agnostic eviction")     \
  X(snapkv, make_snapkv_method, "SnapKV: the observation window's attention chooses tokens")       \
  X(think, make_think_method, "ThinK: query-driven key channel pruning")                           \
  X(hybrid, make_hybrid_method, "EchoKV-Hybrid: ThinK on keys, EchoKV on values")                  \
  X(echo_kvzip, make_echo_kvzip_method, "EchoKV x KVzip: EchoKV on the tokens KVzip keeps")      \
  X(knorm, make_knorm_method, "Knorm: the lowest-norm keys of the context, per head")                         \
  X(random, make_random_method, "Random: a random subset of the context per head (the floor)")               \
  X(keydiff, make_keydiff_method, "KeyDiff: the context keys least similar to the mean key, per head")     \
  X(tova, make_tova_method, "TOVA: the context's last query's attention, averaged over heads")            \
  X(observed_attention, make_observed_attention_method, "ObservedAttention (H2O): mean attention received") \
  X(adakv, make_adakv_method, "AdaKV: one top-k over a layer's heads (head budgets differ), any scorer")   \
  X(chunkkv, make_chunkkv_method, "ChunkKV: the top chunks of 20 context tokens, any scorer")              \
  X(pyramidkv, make_pyramidkv_method, "PyramidKV: SnapKV scores, layer budgets falling with depth")       \
  X(expected_attention, make_expected_attention_method, "ExpectedAttention: attention expected from query statistics x ||v||") \
  X(lagkv, make_lagkv_method, "LagKV: lag-relative key/value spread, attention-free")                      \
  X(criticalkv, make_criticalkv_method, "CriticalKV: any scorer rescaled by ||W_o v||_1, two stages")    \
  X(key_rerotation, make_key_rerotation_method, "KeyRerotation: any scorer, kept keys moved to contiguous positions")  \
  X(kivi, make_kivi_method, "KIVI: keys per channel, values per token, 2/4-bit, recent tokens full precision")  \
  X(duo_attention, make_duo_attention_method, "DuoAttention (on the fly): streaming heads keep sink + recent, per-head storage")  \
  X(decoding, make_decoding_method, "DecodingPress: every N generated tokens, cut each head back to a target size") \
  X(minicache, make_minicache_method, "MiniCache: adjacent layers share SLERP-merged directions, distinct tokens kept") \
  X(commonkv, make_commonkv_method, "CommonKV: layer groups share an SVD latent basis, similar tokens merged across layers") \
  X(kivi_eviction, make_kivi_eviction_method, "KIVI x eviction: any eviction method's kept tokens stored under KIVI's policy")

#define ECHOKV_DECLARE(kind, factory, summary) std::unique_ptr<Method> factory(MethodOptions& options);
ECHOKV_METHODS(ECHOKV_DECLARE)
#undef ECHOKV_DECLARE

const std::vector<RegisteredMethod>& registered_methods() {
#define ECHOKV_ENTRY(kind, factory, summary) RegisteredMethod{#kind, summary, &factory},
  static const std::vector<RegisteredMethod> methods = {ECHOKV_METHODS(ECHOKV_ENTRY)};
#undef ECHOKV_ENTRY
  return methods;
}

std::string method_kinds_text() {
  const auto& methods = registered_methods();
  std::string out;
  for (size_t i = 0; i < methods.size(); ++i) out += (i == 0 ? "" : i + 1 == methods.size() ? " or " : ", ") + methods[i].kind;
  return out;
}

const RegisteredMethod* find_method(const std::string& kind) {
  for (const auto& m : registered_methods())
    if (m.kind == kind) return &m;
  return nullptr;
}

std::unique_ptr<Method> make_method(ConfigNode& entry, const std::string& label) {
  const std::string kind = entry.get<std::string>("cache", "full");
  const RegisteredMethod* found = find_method(kind);
  if (!found) fail(entry.file(), label + ": cache must be " + method_kinds_text() + " (got '" + kind + "')");
  const std::string method_label = label + " (cache " + kind + ")";
  MethodOptions options(entry, kind, method_label);
  auto method = found->make(options);
  const auto unread = entry.unread_keys();
  if (!unread.empty()) {
    std::string known;
    for (const auto& k : entry.read_keys())
      if (k != "cache" && k != "name") known += (known.empty() ? "" : ", ") + k;
    fail(entry.file(), method_label + ": '" + unread.front() + "' is not an option of " + kind + " (its options: " +
                           (known.empty() ? "none" : known) + ")");
  }
  method->kind_ = kind;
  return method;
}

std::unique_ptr<Method> make_method_from_yaml(const std::string& yaml, const std::string& where) {
  YAML::Node node;
  try {
    node = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    fail(where, std::string("malformed method YAML: ") + e.what());
  }
  if (!node.IsMap()) fail(where, "a method is a mapping, e.g. {cache: snapkv, ratio: 0.5}");
  ConfigNode entry(node, where, "");
  return make_method(entry, "method");
}

}  // namespace echokv
