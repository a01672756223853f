// The shipped testbed model (data/models/echokv-testbed-8l): it loads as an HF Llama with
// GQA, fits the 60 MB budget, and the held-out perplexity printed on its card reproduces
// within 1 % on the held-out split (rebuilt from the Debian packages, as training built it).
#include <filesystem>
#include <regex>

#include <gtest/gtest.h>

#include "core/files.h"
#include "model/session.h"
#include "test_support.h"
#include "train/pretrain_config.h"
#include "train/pretrain_data.h"
#include "train/pretrainer.h"

using namespace echokv;
using namespace echokv::testing;

TEST(ShippedTestbed, LoadsAndItsCardPerplexityReproduces) {
  const std::string dir = source_dir() + "/data/models/echokv-testbed-8l";
  ASSERT_TRUE(file_exists(dir + "/config.json")) << "the testbed model is not shipped in " << dir;
  uintmax_t bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) bytes += std::filesystem::file_size(e.path());
  EXPECT_LE(bytes, 60u * 1000 * 1000);
  auto model = load_model_for_run(dir, "cpu", "float32", 0);
  const auto& mc = model->config();
  EXPECT_GE(mc.num_hidden_layers, 8);
  EXPECT_LT(mc.num_key_value_heads, mc.num_attention_heads);
  EXPECT_GE(mc.head_dim, 32);

  const std::string card = read_text_file(dir + "/README.md");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(card, m, std::regex(R"(Held-out perplexity: \*\*([0-9.]+)\*\*)"))) << "card has no perplexity";
  const double card_ppl = std::stod(m[1]);

  auto config = PretrainConfig::load(source_dir() + "/configs/testbed/tb8.yaml");
  // The config's paths are relative to its own folder: work_dir is the repository's data/training/testbed-8l.
  EXPECT_EQ(std::filesystem::path(config.work_dir), std::filesystem::path(source_dir() + "/data/training/testbed-8l").lexically_normal());
  const auto data = prepare_pretrain_data(config, /*heldout_only=*/true);
  const auto result = heldout_perplexity(*model, config, data, config.eval_heldout_sequences);
  const double ppl = result["heldout_ppl"].get<double>();
  EXPECT_NEAR(ppl, card_ppl, 0.01 * card_ppl) << "card " << card_ppl << ", measured " << ppl;
}
