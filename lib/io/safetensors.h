// Safetensors files: mmap'ed reading with zero-copy tensors, strict validation, and writing.
// Format: 8-byte little-endian header length N, N bytes of JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
// then the data buffer, entirely covered by the tensors' byte ranges.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace echokv {

struct TensorInfo {
  std::string name;
  std::string dtype_tag;          // as written in the file: "F32", "BF16", ...
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;             // byte offsets into the data buffer
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates the file; throws echokv::Error naming the file on any defect.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return infos_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // A CPU tensor in the file's dtype. A view into the mapping (no copy) when the data is
  // aligned for its dtype; the mapping stays alive as long as any such view does. Writes to
  // a view are private copy-on-write and never reach the file.
  torch::Tensor tensor(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> mapping_;
  const uint8_t* data_ = nullptr;   // start of the data buffer inside the mapping
  std::map<std::string, TensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

// Tag <-> dtype. Unknown tags throw with the tag named.
torch::ScalarType safetensors_dtype(const std::string& tag);
std::string safetensors_tag(torch::ScalarType dtype);

// Writes tensors (any device, made contiguous on CPU) atomically. Names must be unique.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Convenience: every tensor of a file, as owned copies (no mapping kept).
std::map<std::string, torch::Tensor> load_safetensors(const std::string& path);

}  // namespace echokv
