#include "train/pretrain_config.h"

#include <algorithm>

#include <cstdlib>

#include <cmath>

#include "core/error.h"
#include "core/yaml_config.h"

namespace echokv {

const CurriculumStage& PretrainConfig::stage_at(int64_t step) const {
  for (const auto& s : curriculum)
    if (step < s.until_step) return s;
  return curriculum.back();
}

double learning_rate(const PretrainConfig& c, int64_t step) {
  if (step < c.warmup_steps) return c.lr * (step + 1) / static_cast<double>(c.warmup_steps);
  const double progress =
      std::min(1.0, (step - c.warmup_steps) / std::max<double>(1.0, static_cast<double>(c.total_steps - c.warmup_steps)));
  const double min_lr = c.lr * c.min_lr_ratio;
  return min_lr + 0.5 * (c.lr - min_lr) * (1 + std::cos(M_PI * progress));
}

PretrainConfig PretrainConfig::load(const std::string& path) {
  PretrainConfig c;
  c.source = path;
  auto root = ConfigNode::load_file(path);
  c.name = root.require<std::string>("name");
  c.work_dir = root.require_path("work_dir");
  c.output_dir = root.require_path("output_dir");
  c.seed = root.get<uint64_t>("seed", 1234);
  c.threads = root.get<int>("threads", 0);
  c.init_from = root.get_path("init_from", "");

  auto corpus = root.child("corpus");
  for (auto& s : corpus.list("sources")) {
    CorpusSource src;
    src.name = s.require<std::string>("name");
    src.path = s.require_path("path");
    // ECHOKV_DATA_ROOT relocates absolute source paths (a machine where the Debian data
    // packages are unpacked under a folder, e.g. the GPU bundle); content is still checked
    // against the lock.
    if (const char* data_root = std::getenv("ECHOKV_DATA_ROOT"); data_root && *data_root && !src.path.empty() &&
        src.path[0] == '/')
      src.path = std::string(data_root) + src.path;
    src.format = s.require<std::string>("format");
    src.package = s.get<std::string>("package", "");
    s.finish();
    c.corpus.sources.push_back(src);
  }
  c.corpus.document_chars = corpus.get<int64_t>("document_chars", 2000);
  c.corpus.heldout_every = corpus.get<int64_t>("heldout_every", 50);
  corpus.finish();

  auto tok = root.child("tokenizer");
  c.tokenizer_vocab = tok.get<int64_t>("vocab_size", 4096);
  c.tokenizer_sentences = tok.get<int64_t>("max_sentences", 2000000);
  tok.finish();

  auto m = root.child("model");
  ModelConfig& mc = c.model;
  mc.model_type = "llama";
  mc.vocab_size = c.tokenizer_vocab;
  mc.hidden_size = m.require<int64_t>("hidden_size");
  mc.num_hidden_layers = m.require<int64_t>("num_hidden_layers");
  mc.num_attention_heads = m.require<int64_t>("num_attention_heads");
  mc.num_key_value_heads = m.require<int64_t>("num_key_value_heads");
  mc.head_dim = m.get<int64_t>("head_dim", mc.hidden_size / mc.num_attention_heads);
  mc.intermediate_size = m.require<int64_t>("intermediate_size");
  mc.rope_theta = m.get<double>("rope_theta", 10000.0);
  mc.max_position_embeddings = m.get<int64_t>("max_position_embeddings", 2048);
  mc.rms_norm_eps = m.get<double>("rms_norm_eps", 1e-5);
  mc.tie_word_embeddings = m.get<bool>("tie_word_embeddings", true);
  c.init_std = m.get<double>("init_std", 0.02);
  m.finish();
  if (mc.num_attention_heads % mc.num_key_value_heads != 0) fail(path, "model: heads must be a multiple of KV heads");

  auto t = root.child("train");
  c.dtype = t.get<std::string>("dtype", "float32");
  if (c.dtype != "float32" && c.dtype != "bfloat16") fail(path, "train.dtype must be float32 or bfloat16");
  c.lr = t.get<double>("lr", c.lr);
  c.min_lr_ratio = t.get<double>("min_lr_ratio", c.min_lr_ratio);
  c.weight_decay = t.get<double>("weight_decay", c.weight_decay);
  auto betas = t.get<std::vector<double>>("betas", {c.beta1, c.beta2});
  if (betas.size() != 2) fail(path, "train.betas must have two numbers");
  c.beta1 = betas[0];
  c.beta2 = betas[1];
  c.grad_clip = t.get<double>("grad_clip", c.grad_clip);
  c.warmup_steps = t.get<int64_t>("warmup_steps", c.warmup_steps);
  c.total_steps = t.require<int64_t>("total_steps");
  c.tokens_per_step = t.get<int64_t>("tokens_per_step", c.tokens_per_step);
  c.micro_batch_tokens = t.get<int64_t>("micro_batch_tokens", c.micro_batch_tokens);
  c.checkpoint_every = t.get<int64_t>("checkpoint_every", c.checkpoint_every);
  c.log_every = t.get<int64_t>("log_every", c.log_every);
  c.eval_every = t.get<int64_t>("eval_every", c.eval_every);
  for (auto& s : t.list("curriculum")) {
    CurriculumStage st;
    st.until_step = s.require<int64_t>("until_step");
    if (s.yaml()["seq_len"] && s.yaml()["seq_len"].IsSequence()) {
      st.lengths = s.require<std::vector<int64_t>>("seq_len");
      if (st.lengths.empty()) fail(path, "curriculum seq_len list is empty");
    } else {
      st.lengths = {s.require<int64_t>("seq_len")};
    }
    st.seq_len = *std::max_element(st.lengths.begin(), st.lengths.end());
    st.mix = s.number_map("mix");
    s.finish();
    double total = 0;
    for (const auto& [k, v] : st.mix) {
      const bool ruler_kind = k == "ruler" || k.rfind("ruler/", 0) == 0;
      if (k != "text" && k != "retrieval" && k != "copy" && !ruler_kind)
        fail(path, "curriculum mix kind '" + k + "' (expected text, retrieval, copy, ruler or ruler/<task>)");
      if (ruler_kind && !root.has("ruler")) fail(path, "curriculum mix kind '" + k + "' needs a ruler section");
      if (v < 0) fail(path, "curriculum mix weights must be >= 0");
      total += v;
    }
    if (total <= 0) fail(path, "curriculum stage with an empty mix");
    for (int64_t len : st.lengths)
      if (len < 64 || len > mc.max_position_embeddings)
        fail(path, "curriculum seq_len " + std::to_string(len) + " outside [64, max_position_embeddings]");
    c.curriculum.push_back(st);
  }
  if (c.curriculum.empty()) fail(path, "train.curriculum needs at least one stage");
  t.finish();

  if (root.has("tasks")) {
    auto k = root.child("tasks");
    c.tasks.answer_weight = k.get<float>("answer_weight", c.tasks.answer_weight);
    c.tasks.copy_weight = k.get<float>("copy_weight", c.tasks.copy_weight);
    c.tasks.max_needles = k.get<int>("max_needles", c.tasks.max_needles);
    c.tasks.chain_fraction = k.get<double>("chain_fraction", c.tasks.chain_fraction);
    k.finish();
  }
  if (root.has("ruler")) {
    auto r = root.child("ruler");
    c.has_ruler = true;
    c.ruler.data_dir = r.require_path("data_dir");
    c.ruler.tasks = r.get<std::vector<std::string>>("tasks", {});
    c.ruler.model_template = r.get<std::string>("template", c.ruler.model_template);
    c.ruler.essay_train_begin = r.get<double>("essay_train_begin", c.ruler.essay_train_begin);
    c.ruler.prompt_weight = r.get<float>("prompt_weight", c.ruler.prompt_weight);
    c.ruler.answer_weight = r.get<float>("answer_weight", c.tasks.answer_weight);
    r.finish();
    if (!(c.ruler.essay_train_begin > 0 && c.ruler.essay_train_begin < 1)) fail(path, "ruler.essay_train_begin must lie in (0, 1)");
    if (c.ruler.prompt_weight < 0 || c.ruler.answer_weight <= 0) fail(path, "ruler: prompt_weight must be >= 0 and answer_weight > 0");
  }
  if (root.has("eval")) {
    auto e = root.child("eval");
    c.eval_heldout_sequences = e.get<int64_t>("heldout_sequences", c.eval_heldout_sequences);
    c.eval_heldout_seq_len = e.get<int64_t>("heldout_seq_len", c.eval_heldout_seq_len);
    c.eval_retrieval_samples = e.get<int64_t>("retrieval_samples", c.eval_retrieval_samples);
    c.eval_retrieval_lengths = e.get<std::vector<int64_t>>("retrieval_lengths", c.eval_retrieval_lengths);
    c.eval_ruler_samples = e.get<int64_t>("ruler_samples", c.eval_ruler_samples);
    c.eval_ruler_lengths = e.get<std::vector<int64_t>>("ruler_lengths", c.eval_ruler_lengths);
    e.finish();
  }
  root.finish();
  if (c.has_ruler) {
    if (c.eval_ruler_samples < 1) fail(path, "eval.ruler_samples must be >= 1");
    for (int64_t L : c.eval_ruler_lengths)
      if (L < 256 || L > mc.max_position_embeddings)
        fail(path, "eval.ruler_lengths: " + std::to_string(L) + " outside [256, max_position_embeddings]");
  }
  return c;
}

}  // namespace echokv
