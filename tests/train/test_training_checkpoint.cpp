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
