// A HuggingFace checkpoint folder's weights: `model.safetensors`, or shards listed by
// `model.safetensors.index.json`. Tensors are looked up by HF name.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace echokv {

class Checkpoint {
 public:
  // Opens `dir`; errors name the folder or file when nothing loadable is there.
  static Checkpoint open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  // The file a tensor lives in (for error messages).
  const std::string& file_of(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  // CPU tensor in the stored dtype (zero-copy view where possible). Missing -> clear error.
  torch::Tensor tensor(const std::string& name) const;

 private:
  std::string dir_;
  std::map<std::string, std::shared_ptr<SafetensorsFile>> files_;   // by file path
  std::map<std::string, std::string> where_;                        // tensor name -> file path
};

// Tensor names a Llama checkpoint may carry that the model does not use.
bool is_ignored_tensor(const std::string& name);

}  // namespace echokv
