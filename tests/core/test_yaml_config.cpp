// Config paths resolve relative to the config file's folder (so a config runs from any working
// directory); absolute paths stay; values typed on a command line (!cwd) mean the working
// directory; unknown keys and wrong types name the file and the key.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/yaml_config.h"
#include "test_support.h"

using namespace echokv;
using namespace echokv::testing;

TEST(ConfigPaths, RelativeToTheConfigFileAbsoluteAsGiven) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("configs/eval"));
  const std::string path = dir.file("configs/eval/run.yaml");
  std::ofstream(path) << "model: ../../models/m\nout: runs/x\nabs: /usr/share/dict\nempty: ''\n"
                         "files: [a.txt, ../b.txt, /c.txt]\nnested: {dir: ./d/../e}\n";
  auto root = ConfigNode::load_file(path);
  EXPECT_EQ(root.require_path("model"), dir.file("models/m"));
  EXPECT_EQ(root.get_path("out", ""), dir.file("configs/eval/runs/x"));
  EXPECT_EQ(root.get_path("abs", ""), "/usr/share/dict");
  EXPECT_EQ(root.get_path("empty", "fallback"), "");
  EXPECT_EQ(root.get_path("absent", "kept/as/given"), "kept/as/given");
  EXPECT_EQ(root.path_list("files"),
            (std::vector<std::string>{dir.file("configs/eval/a.txt"), dir.file("configs/b.txt"), "/c.txt"}));
  EXPECT_TRUE(root.path_list("no_such_list").empty());
  EXPECT_EQ(root.child("nested").require_path("dir"), dir.file("configs/eval/e"));
}

TEST(ConfigPaths, ARelativeConfigPathGivesNormalisedRelativePaths) {
  // Run from the repository root with `--config configs/eval/x.yaml`, "../../data/m" is
  // "data/m": the same string a checkpoint recorded before paths were config-relative.
  TempDir dir;
  std::filesystem::create_directories(dir.file("configs/eval"));
  std::ofstream(dir.file("configs/eval/x.yaml")) << "model: ../../data/m\nshared: ../../../shared/r\n";
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  auto root = ConfigNode::load_file("configs/eval/x.yaml");
  const std::string model = root.require_path("model"), shared = root.require_path("shared");
  std::filesystem::current_path(cwd);
  EXPECT_EQ(model, "data/m");
  EXPECT_EQ(shared, "../shared/r");
}

TEST(ConfigPaths, CommandLineValuesMeanTheWorkingDirectory) {
  YAML::Node node = YAML::Load("{out: runs/y, list: [p, 0.5], n: 3, flag: true}");
  ConfigNode::tag_working_directory_values(node);
  EXPECT_EQ(node["out"].Tag(), "!cwd");
  EXPECT_EQ(node["list"][0].Tag(), "!cwd");
  EXPECT_NE(node["list"][1].Tag(), "!cwd");  // numbers and booleans stay plain
  EXPECT_NE(node["n"].Tag(), "!cwd");
  EXPECT_NE(node["flag"].Tag(), "!cwd");
  EXPECT_EQ(node["n"].as<int>(), 3);
  ConfigNode root(node, "/somewhere/configs/run.yaml", "");
  EXPECT_EQ(root.require_path("out"), "runs/y");
}

TEST(ConfigNode, UnknownKeysAndWrongTypesNameFileAndKey) {
  TempDir dir;
  const std::string path = dir.file("c.yaml");
  std::ofstream(path) << "a: 1\nsub: {b: x}\ntypo: 2\n";
  auto root = ConfigNode::load_file(path);
  EXPECT_EQ(root.require<int>("a"), 1);
  auto sub = root.child("sub");
  auto msg = error_of([&] { sub.require<int>("b"); });
  EXPECT_NE(msg.find("c.yaml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sub.b"), std::string::npos) << msg;
  msg = error_of([&] { root.finish(); });
  EXPECT_NE(msg.find("unknown key 'typo'"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { ConfigNode::load_file(dir.file("absent.yaml")); }).find("does not exist"), std::string::npos);
}
