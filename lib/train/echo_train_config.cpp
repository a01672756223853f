#include "train/echo_train_config.h"

#include "core/yaml_config.h"

namespace echokv {

namespace {
EchoStageConfig read_stage(ConfigNode& root, const std::string& key, EchoStageConfig s) {
  if (!root.has(key)) return s;
  auto n = root.child(key);
  s.steps = n.get<int64_t>("steps", s.steps);
  s.lr = n.get<double>("lr", s.lr);
  n.finish();
  if (s.steps < 0) fail(n.file(), key + ".steps must be >= 0");
  if (!(s.lr > 0)) fail(n.file(), key + ".lr must be > 0");
  return s;
}
}  // namespace

EchoTrainConfig EchoTrainConfig::load(const std::string& path) {
  auto root = ConfigNode::load_file(path);
  EchoTrainConfig c;
  c.source = path;
  c.model = root.require_path("model");
  c.device = root.get<std::string>("device", c.device);
  c.dtype = root.get<std::string>("dtype", c.dtype);
  c.threads = root.get<int>("threads", c.threads);
  {
    auto p = root.child("plan");
    c.plan_file = p.get_path("file", "");
    // A plan file fixes its own ratio and strategy; a second value next to it would be ignored.
    for (const char* key : {"ratio", "strategy", "granularity"})
      if (!c.plan_file.empty() && p.has(key))
        fail(path, std::string("plan.") + key + " cannot be given with plan.file (the plan file " + c.plan_file +
                       " fixes which heads are kept; its ratio is the plan's own)");
    c.plan_strategy = p.get<std::string>("strategy", c.plan_strategy);
    c.plan_ratio = p.get<double>("ratio", c.plan_ratio);
    c.plan_granularity = p.get<int64_t>("granularity", c.plan_granularity);
    p.finish();
    if (c.plan_file.empty() && c.plan_strategy != "paper")
      fail(path, "plan: give 'file' (e.g. from echokv-analyze) or strategy 'paper' with a ratio");
    if (!(c.plan_ratio > 0 && c.plan_ratio <= 1)) fail(path, "plan.ratio must be in (0, 1]");
  }
  {
    auto d = root.child("data");
    read_calibration(d, c.data, "data");
    c.validation_sequences = d.get<int64_t>("validation_sequences", c.validation_sequences);
    d.finish();
    if (c.validation_sequences <= 0) fail(path, "data.validation_sequences must be positive");
  }
  if (root.has("reconstructor")) {
    auto r = root.child("reconstructor");
    c.bias = r.get<bool>("bias", c.bias);
    c.init_seed = r.get<uint64_t>("init_seed", c.init_seed);
    c.init = r.get<std::string>("init", c.init);
    c.init_sequences = r.get<int64_t>("init_sequences", c.init_sequences);
    c.init_ridge = r.get<double>("init_ridge", c.init_ridge);
    r.finish();
    if (c.init != "random" && c.init != "least_squares")
      fail(path, "reconstructor.init must be random or least_squares (got '" + c.init + "')");
    if (c.init_sequences <= 0 || c.init_ridge < 0) fail(path, "reconstructor.init_sequences > 0 and init_ridge >= 0");
  }
  if (root.has("attention")) {
    auto a = root.child("attention");
    c.sink_tokens = a.get<int64_t>("sink_tokens", c.sink_tokens);
    c.recent_tokens = a.get<int64_t>("recent_tokens", c.recent_tokens);
    a.finish();
    if (c.sink_tokens < 0 || c.recent_tokens < 0) fail(path, "attention.sink_tokens and recent_tokens must be >= 0");
  }
  c.stage1 = read_stage(root, "stage1", c.stage1);
  c.stage2 = read_stage(root, "stage2", c.stage2);
  if (root.has("optimizer")) {
    auto o = root.child("optimizer");
    c.weight_decay = o.get<double>("weight_decay", c.weight_decay);
    auto betas = o.get<std::vector<double>>("betas", {c.beta1, c.beta2});
    if (betas.size() != 2) fail(path, "optimizer.betas must be two numbers");
    c.beta1 = betas[0];
    c.beta2 = betas[1];
    c.eps = o.get<double>("eps", c.eps);
    o.finish();
  }
  c.seed = root.get<uint64_t>("seed", c.seed);
  c.checkpoint_every = root.get<int64_t>("checkpoint_every", c.checkpoint_every);
  c.log_every = root.get<int64_t>("log_every", c.log_every);
  c.output_dir = root.require_path("output_dir");
  root.finish();
  if (c.checkpoint_every <= 0 || c.log_every <= 0) fail(path, "checkpoint_every and log_every must be positive");
  if (c.sink_tokens >= c.data.seq_len) fail(path, "attention.sink_tokens must be below data.seq_len");
  return c;
}

}  // namespace echokv
