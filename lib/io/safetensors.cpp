#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <limits>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"

namespace echokv {

using nlohmann::json;

struct SafetensorsFile::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr && addr != MAP_FAILED) ::munmap(addr, size);
  }
};

namespace {

struct DtypeEntry {
  const char* tag;
  torch::ScalarType dtype;
};

const DtypeEntry kDtypes[] = {
    {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16},
    {"BF16", torch::kBFloat16}, {"I64", torch::kInt64}, {"I32", torch::kInt32},
    {"I16", torch::kInt16}, {"I8", torch::kInt8}, {"U8", torch::kUInt8},
    {"BOOL", torch::kBool},
};

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const json& entry,
                       uint64_t data_size) {
  auto bad = [&](const std::string& what) { fail(path, "tensor '" + name + "': " + what); };
  if (!entry.is_object()) bad("header entry is not an object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(key)) bad(std::string("header entry lacks '") + key + "'");
  TensorInfo info;
  info.name = name;
  if (!entry["dtype"].is_string()) bad("dtype is not a string");
  info.dtype_tag = entry["dtype"].get<std::string>();
  try {
    info.dtype = safetensors_dtype(info.dtype_tag);
  } catch (const Error& e) {
    bad(e.what());
  }
  const json& shape = entry["shape"];
  if (!shape.is_array()) bad("shape is not an array");
  uint64_t numel = 1;
  for (const json& d : shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) bad("shape has a non-integer or negative dimension");
    const uint64_t dim = d.get<uint64_t>();
    if (dim != 0 && numel > (uint64_t(1) << 62) / dim) bad("shape is too large");
    numel *= dim;
    info.shape.push_back(static_cast<int64_t>(dim));
  }
  const json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    bad("data_offsets must be two non-negative integers");
  info.begin = offsets[0].get<uint64_t>();
  info.end = offsets[1].get<uint64_t>();
  if (info.begin > info.end) bad("data_offsets begin > end");
  if (info.end > data_size)
    bad("data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
        "] run past the data buffer of " + std::to_string(data_size) + " bytes (truncated file?)");
  // The byte count must not wrap: a shape of 2^62 elements of 4 bytes is 2^64 bytes, which
  // an unchecked product turns into 0 (and a tensor that matches empty data_offsets).
  const uint64_t element = c10::elementSize(info.dtype);
  if (numel > std::numeric_limits<uint64_t>::max() / element)
    bad("dtype " + info.dtype_tag + " x shape " + shape_string(info.shape) + " is too large (its byte count overflows)");
  const uint64_t expected = numel * element;
  if (info.end - info.begin != expected)
    bad("data_offsets cover " + std::to_string(info.end - info.begin) + " bytes but dtype " +
        info.dtype_tag + " x shape " + shape_string(info.shape) + " needs " + std::to_string(expected));
  return info;
}

}  // namespace

torch::ScalarType safetensors_dtype(const std::string& tag) {
  for (const auto& e : kDtypes)
    if (tag == e.tag) return e.dtype;
  throw Error("unsupported dtype '" + tag +
              "' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
}

std::string safetensors_tag(torch::ScalarType dtype) {
  for (const auto& e : kDtypes)
    if (dtype == e.dtype) return e.tag;
  throw Error(std::string("no safetensors dtype for ") + c10::toString(dtype));
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, "cannot stat");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail(path, "truncated safetensors file: " + std::to_string(file_size) + " bytes, no room for the 8-byte header length");
  }
  auto mapping = std::make_shared<Mapping>();
  mapping->size = file_size;
  // MAP_PRIVATE + PROT_WRITE: views are writable copy-on-write; the file itself is never touched.
  mapping->addr = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (mapping->addr == MAP_FAILED) fail(path, std::string("mmap failed: ") + std::strerror(errno));
  file->mapping_ = mapping;
  const auto* bytes = static_cast<const uint8_t*>(mapping->addr);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > file_size - 8)
    fail(path, "header length " + std::to_string(header_len) + " runs beyond the file size " +
                   std::to_string(file_size) + " (truncated or not a safetensors file)");
  const uint64_t data_size = file_size - 8 - header_len;
  file->data_ = bytes + 8 + header_len;

  // Parse the header, rejecting duplicate top-level names (plain JSON parsing would keep
  // only the last one silently).
  std::set<std::string> seen;
  std::string duplicate;
  json header;
  try {
    header = json::parse(
        reinterpret_cast<const char*>(bytes + 8), reinterpret_cast<const char*>(bytes + 8 + header_len),
        [&](int depth, json::parse_event_t event, json& parsed) {
          if (depth == 1 && event == json::parse_event_t::key) {
            const std::string key = parsed.get<std::string>();
            if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
          }
          return true;
        });
  } catch (const json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) fail(path, "duplicate tensor name '" + duplicate + "' in header");
  if (!header.is_object()) fail(path, "header is not a JSON object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) fail(path, "__metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) fail(path, "__metadata__ value for '" + m.key() + "' is not a string");
        file->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    file->infos_[it.key()] = parse_entry(path, it.key(), it.value(), data_size);
  }

  // The data buffer must be covered exactly: no overlaps, no holes, no trailing bytes.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& [name, info] : file->infos_) by_offset.push_back(&info);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* info : by_offset) {
    if (info->begin < cursor)
      fail(path, "tensors '" + previous->name + "' and '" + info->name + "' overlap in the data buffer");
    if (info->begin > cursor)
      fail(path, "data buffer has a hole of " + std::to_string(info->begin - cursor) +
                     " bytes before tensor '" + info->name + "'");
    cursor = info->end;
    previous = info;
  }
  if (cursor != data_size)
    fail(path, "data buffer is " + std::to_string(data_size) + " bytes but tensors cover " +
                   std::to_string(cursor) + " (trailing bytes)");
  return file;
}

SafetensorsFile::~SafetensorsFile() = default;

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& kv : infos_) out.push_back(kv.first);
  return out;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = infos_.find(name);
  if (it == infos_.end()) fail(path_, "missing tensor '" + name + "'");
  return it->second;
}

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& ti = info(name);
  auto options = torch::TensorOptions().dtype(ti.dtype).device(torch::kCPU);
  void* ptr = const_cast<uint8_t*>(data_ + ti.begin);
  const size_t align = c10::elementSize(ti.dtype);
  if (reinterpret_cast<uintptr_t>(ptr) % align == 0) {
    std::shared_ptr<Mapping> keep = mapping_;
    return torch::from_blob(ptr, ti.shape, [keep](void*) mutable { keep.reset(); }, options);
  }
  torch::Tensor out = torch::empty(ti.shape, options);
  std::memcpy(out.data_ptr(), ptr, ti.end - ti.begin);
  return out;
}

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  std::vector<torch::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail(path, "'__metadata__' is not a valid tensor name");
    if (header.contains(name)) fail(path, "duplicate tensor name '" + name + "'");
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    header[name] = {{"dtype", safetensors_tag(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    contiguous.push_back(c);
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  write_file_atomic(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) fail(tmp, "cannot open for writing");
    uint64_t n = text.size();
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& c : contiguous)
      out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * c.element_size()));
    out.flush();
    if (!out) fail(tmp, "write failed");
  });
}

std::map<std::string, torch::Tensor> load_safetensors(const std::string& path) {
  auto file = SafetensorsFile::open(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& name : file->names()) out[name] = file->tensor(name).clone();
  return out;
}

}  // namespace echokv
