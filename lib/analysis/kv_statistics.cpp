#include "analysis/kv_statistics.h"

#include "core/error.h"
#include "io/safetensors.h"

namespace echokv {

KVStatistics::KVStatistics(int64_t num_layers, int64_t features, int window, torch::Device device)
    : num_layers_(num_layers), features_(features), window_(window), device_(device) {
  if (num_layers <= 0 || features <= 0) throw Error("KVStatistics: layers and features must be positive");
  if (window < 0) throw Error("KVStatistics: window must be >= 0");
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  for (auto& s : sides_) {
    s.shift.assign(num_layers, torch::Tensor());
    s.sum.resize(num_layers);
    s.cross.resize(num_layers);
    for (int l = 0; l < num_layers; ++l) {
      s.sum[l] = torch::zeros({features}, opts);
      const int lags = std::min(window, l) + 1;
      for (int lag = 0; lag < lags; ++lag) s.cross[l].push_back(torch::zeros({features, features}, opts));
    }
  }
}

void KVStatistics::add(KVKind kind, int layer, const torch::Tensor& x) {
  Side& s = side(kind);
  if (layer != s.next_layer)
    throw Error("KVStatistics::add: layer " + std::to_string(layer) + " arrived, expected " +
                std::to_string(s.next_layer));
  if (x.dim() != 2 || x.size(1) != features_)
    throw Error("KVStatistics::add: rows must be [N, " + std::to_string(features_) + "]");
  torch::Tensor rows = x.to(device_, torch::kFloat64);
  if (layer == 0) {
    s.batch_rows = rows.size(0);
    s.recent.clear();
  } else if (rows.size(0) != s.batch_rows) {
    throw Error("KVStatistics::add: layer " + std::to_string(layer) + " has " + std::to_string(rows.size(0)) +
                " rows, layer 0 had " + std::to_string(s.batch_rows));
  }
  if (!s.shift[layer].defined() && rows.size(0) > 0) s.shift[layer] = rows.mean(0);
  if (s.shift[layer].defined()) rows = rows - s.shift[layer];
  s.sum[layer] += rows.sum(0);
  s.recent.push_front(rows);  // recent[lag] = rows of layer - lag
  for (size_t lag = 0; lag < s.cross[layer].size(); ++lag) s.cross[layer][lag].addmm_(rows.t(), s.recent[lag]);
  while (int(s.recent.size()) > window_ + 1) s.recent.pop_back();
  s.next_layer = (layer + 1) % int(num_layers_);
  if (kind == KVKind::Key && layer == num_layers_ - 1) count_ += rows.size(0);
  if (s.next_layer == 0) s.recent.clear();
}

torch::Tensor KVStatistics::mean(KVKind kind, int layer) const {
  if (count_ == 0) throw Error("KVStatistics: no tokens accumulated");
  const Side& s = side(kind);
  return s.shift[layer] + s.sum[layer] / double(count_);
}

torch::Tensor KVStatistics::covariance(KVKind kind, int a, int b) const {
  if (count_ == 0) throw Error("KVStatistics: no tokens accumulated");
  if (!covers(a, b))
    throw Error("KVStatistics: layers " + std::to_string(a) + " and " + std::to_string(b) +
                " are further apart than the collected window (" + std::to_string(window_) + ")");
  if (a < b) return covariance(kind, b, a).t();
  const Side& s = side(kind);
  const double n = double(count_);
  const auto ma = s.sum[a] / n, mb = s.sum[b] / n;  // means of the shifted rows
  return s.cross[a][a - b] / n - torch::outer(ma, mb);
}

void KVStatistics::save(const std::string& path) const {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (KVKind kind : {KVKind::Key, KVKind::Value}) {
    const Side& s = side(kind);
    const std::string k = kv_kind_name(kind);
    for (int l = 0; l < num_layers_; ++l) {
      tensors.push_back({k + ".sum." + std::to_string(l), s.sum[l]});
      tensors.push_back({k + ".shift." + std::to_string(l),
                         s.shift[l].defined() ? s.shift[l] : torch::zeros({features_}, torch::kFloat64)});
      for (size_t lag = 0; lag < s.cross[l].size(); ++lag)
        tensors.push_back({k + ".cross." + std::to_string(l) + "." + std::to_string(lag), s.cross[l][lag]});
    }
  }
  save_safetensors(path, tensors,
                   {{"format", "echokv-kv-statistics/1"},
                    {"num_layers", std::to_string(num_layers_)},
                    {"features", std::to_string(features_)},
                    {"window", std::to_string(window_)},
                    {"count", std::to_string(count_)}});
}

KVStatistics KVStatistics::load(const std::string& path) {
  auto file = SafetensorsFile::open(path);
  const auto& meta = file->metadata();
  auto need = [&](const std::string& key) -> int64_t {
    auto it = meta.find(key);
    if (it == meta.end()) fail(path, "not a KV statistics file (metadata '" + key + "' missing)");
    try {
      return std::stoll(it->second);
    } catch (const std::exception&) {
      fail(path, "metadata '" + key + "' is not an integer");
    }
  };
  auto it = meta.find("format");
  if (it == meta.end() || it->second != "echokv-kv-statistics/1") fail(path, "not a KV statistics file (format)");
  KVStatistics stats(need("num_layers"), need("features"), int(need("window")));
  stats.count_ = need("count");
  for (KVKind kind : {KVKind::Key, KVKind::Value}) {
    Side& s = stats.side(kind);
    const std::string k = kv_kind_name(kind);
    auto get = [&](const std::string& name, std::vector<int64_t> shape) {
      if (!file->contains(name)) fail(path, "missing tensor '" + name + "'");
      auto t = file->tensor(name).to(torch::kFloat64).clone();
      if (t.sizes().vec() != shape) fail(path, "tensor '" + name + "' has the wrong shape");
      return t;
    };
    for (int l = 0; l < stats.num_layers_; ++l) {
      s.sum[l] = get(k + ".sum." + std::to_string(l), {stats.features_});
      s.shift[l] = get(k + ".shift." + std::to_string(l), {stats.features_});
      for (size_t lag = 0; lag < s.cross[l].size(); ++lag)
        s.cross[l][lag] = get(k + ".cross." + std::to_string(l) + "." + std::to_string(lag),
                              {stats.features_, stats.features_});
    }
  }
  return stats;
}

}  // namespace echokv
