// Training checkpoints record the LibTorch that wrote them; an optimizer state from another
// version is refused with an error naming the file (its layout does not carry over).
#include <gtest/gtest.h>

#include "core/files.h"
#include "core/torch_compat.h"
#include "test_support.h"
#include "train/training_checkpoint.h"

using namespace echokv;
using namespace echokv::testing;

TEST(TrainingCheckpoint, OptimizerStateFromAnotherLibTorchIsRefused) {
  TempDir tmp;
  auto w = torch::randn({3, 2}).set_requires_grad(true);
  torch::optim::AdamW optimizer({w}, torch::optim::AdamWOptions(1e-3));
  w.sum().backward();
  optimizer.step();
  save_training_checkpoint(tmp.file("ckpt"), "step-1", {{"w", w.detach()}}, optimizer, {{"step", 1}});
  const std::string dir = latest_training_checkpoint(tmp.file("ckpt"));
  nlohmann::json state;
  const auto weights = load_training_checkpoint(dir, &state);
  EXPECT_EQ(state["libtorch"].get<std::string>(), compat::torch_version());
  EXPECT_TRUE(weights.at("w").equal(w.detach()));
  torch::optim::AdamW again({w}, torch::optim::AdamWOptions(1e-3));
  EXPECT_NO_THROW(load_optimizer_state(again, dir, state));
  state["libtorch"] = "0.0.1";
  const auto e = error_of([&] { load_optimizer_state(again, dir, state); });
  EXPECT_NE(e.find(dir + "/state.json"), std::string::npos) << e;
  EXPECT_NE(e.find("written by LibTorch 0.0.1"), std::string::npos) << e;
  state.erase("libtorch");  // checkpoints from before the stamp load as they did
  EXPECT_NO_THROW(load_optimizer_state(again, dir, state));
}

TEST(TrainingCheckpoint, ASaveOverTheCheckpointLatestNamesNeverLeavesItUnloadable) {
  TempDir tmp;
  const std::string root = tmp.file("ckpt");
  auto w = torch::randn({3, 2}).set_requires_grad(true);
  torch::optim::AdamW optimizer({w}, torch::optim::AdamWOptions(1e-3));
  save_training_checkpoint(root, "step-5", {{"w", w.detach()}}, optimizer, {{"step", 5}});
  // the same step saved again (a stop on a checkpoint step) fails half way: a complex tensor
  // has no safetensors dtype. Before, the directory `latest` names was emptied first.
  auto bad = torch::zeros({2}, torch::kComplexFloat);
  EXPECT_THROW(save_training_checkpoint(root, "step-5", {{"w", w.detach()}, {"z", bad}}, optimizer, {{"step", 5}}), std::exception);
  std::string dir = latest_training_checkpoint(root);
  EXPECT_EQ(dir, root + "/step-5");
  EXPECT_TRUE(load_training_checkpoint(dir, nullptr).at("w").equal(w.detach()));
  // a successful re-save replaces it and cleans the partial copy
  save_training_checkpoint(root, "step-5", {{"w", (w * 2).detach()}}, optimizer, {{"step", 5}});
  EXPECT_TRUE(load_training_checkpoint(latest_training_checkpoint(root), nullptr).at("w").equal((w * 2).detach()));
  EXPECT_FALSE(file_exists(root + "/step-5.partial/state.json"));
  // killed after moving step-5.partial into step-5, before `latest` names step-5 again
  write_text_atomic(root + "/latest", "step-5.partial");
  EXPECT_EQ(latest_training_checkpoint(root), root + "/step-5");
  // the next save moves on and drops the old one
  save_training_checkpoint(root, "step-6", {{"w", w.detach()}}, optimizer, {{"step", 6}});
  EXPECT_EQ(latest_training_checkpoint(root), root + "/step-6");
  EXPECT_FALSE(file_exists(root + "/step-5/state.json"));
}
