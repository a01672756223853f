#include "compress/commonkv.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "cache/growable.h"
#include "core/error.h"

namespace echokv {

std::shared_ptr<CommonKVBases> CommonKVBases::from_model(const LlamaModel& model, int64_t layers_per_group) {
  const auto& c = model.config();
  const int64_t L = c.num_hidden_layers, width = c.num_key_value_heads * c.head_dim;
  if (layers_per_group < 1 || layers_per_group > L)
    throw Error("CommonKV: layers_per_group " + std::to_string(layers_per_group) + " must be in [1, " + std::to_string(L) + "]");
  auto b = std::make_shared<CommonKVBases>();
  b->layers_per_group = layers_per_group;
  b->merged_groups = layers_per_group >= 2 ? L / layers_per_group : 0;
  const int64_t groups = (L + layers_per_group - 1) / layers_per_group;
  b->max_rank = std::min<int64_t>(width * layers_per_group, c.hidden_size);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t first = g * layers_per_group, last = std::min(L, first + layers_per_group);
    b->max_rank = std::min<int64_t>(b->max_rank, std::min<int64_t>(width * (last - first), c.hidden_size));
  }
  b->up_k.resize(static_cast<size_t>(L));
  b->up_v.resize(static_cast<size_t>(L));
  b->group_of.resize(static_cast<size_t>(L));
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t first = g * layers_per_group, last = std::min(L, first + layers_per_group);
    for (int kind = 0; kind < 2; ++kind) {
      std::vector<torch::Tensor> rows;
      for (int64_t l = first; l < last; ++l) {
        const auto& w = kind == 0 ? model.layer(static_cast<int>(l)).k_proj : model.layer(static_cast<int>(l)).v_proj;
        rows.push_back(w.to(torch::kCPU, torch::kFloat64));  // [Hkv D, H]
      }
      auto svd = torch::linalg_svd(torch::cat(rows, 0), /*full_matrices=*/false);
      auto root = std::get<1>(svd).slice(0, 0, b->max_rank).sqrt();                        // [r]
      auto down = std::get<2>(svd).slice(0, 0, b->max_rank).transpose(0, 1) * root;        // V_r S^1/2 [H, r]
      auto u = std::get<0>(svd).slice(1, 0, b->max_rank) * root;                           // U_r S^1/2 [G Hkv D, r]
      (kind == 0 ? b->down_k : b->down_v).push_back(down.to(model.device(), model.dtype()).contiguous());
      for (int64_t l = first; l < last; ++l) {
        auto up = u.slice(0, (l - first) * width, (l - first + 1) * width).to(model.device(), model.dtype()).contiguous();
        (kind == 0 ? b->up_k : b->up_v)[static_cast<size_t>(l)] = up;
        b->group_of[static_cast<size_t>(l)] = g;
      }
    }
  }
  return b;
}

CommonKVCounts commonkv_counts(int64_t n, int64_t merged_groups, const CommonKVLayout& layout) {
  CommonKVCounts c;
  c.protected_tokens = std::min<int64_t>(n, layout.sink + layout.recent);
  const int64_t mergeable = merged_groups * (n - c.protected_tokens);
  c.unmerged = std::llround(layout.unmerged * static_cast<double>(mergeable));
  c.merged = mergeable - c.unmerged;
  return c;
}

CommonKVCache::CommonKVCache(const ModelConfig& config, std::shared_ptr<const Rope> rope,
                             std::shared_ptr<const CommonKVBases> bases, const CommonKVLayout& layout,
                             torch::Device device, torch::ScalarType dtype)
    : config_(config), rope_(std::move(rope)), bases_(std::move(bases)), layout_(layout), device_(device), dtype_(dtype) {
  if (static_cast<int64_t>(bases_->up_k.size()) != config.num_hidden_layers)
    throw Error("CommonKVCache: bases are for another model (layer count differs)");
  if (layout_.rank < 1 || layout_.rank > bases_->max_rank)
    throw Error("CommonKVCache: rank " + std::to_string(layout_.rank) + " outside [1, " + std::to_string(bases_->max_rank) + "]");
  if (!(layout_.unmerged >= 0 && layout_.unmerged <= 1)) throw Error("CommonKVCache: unmerged fraction must be in [0, 1]");
  if (layout_.chunk_tokens <= 0 || layout_.sink < 0 || layout_.recent < 0)
    throw Error("CommonKVCache: chunk_tokens must be positive, sink and recent non-negative");
  own_.resize(static_cast<size_t>(config.num_hidden_layers));
  shared_.resize(static_cast<size_t>(bases_->merged_groups));
  pending_x_.resize(static_cast<size_t>(config.num_hidden_layers));
}

void CommonKVCache::set_layer_input(int layer, const torch::Tensor& x) { pending_x_[static_cast<size_t>(layer)] = x; }

void CommonKVCache::push(Latents& list, const torch::Tensor& zk, const torch::Tensor& zv,
                         const std::vector<int64_t>& positions) {
  const int64_t t = zk.size(1);
  if (!list.k.defined()) {
    const int64_t cap = std::max<int64_t>(t, 64);
    list.k = torch::empty({zk.size(0), cap, layout_.rank}, zk.options());
    list.v = torch::empty_like(list.k);
    list.positions_device = torch::empty({cap}, torch::TensorOptions().dtype(torch::kInt64).device(device_));
  }
  list.k = grown_along(list.k, 1, list.len, list.len + t);
  list.v = grown_along(list.v, 1, list.len, list.len + t);
  list.positions_device = grown_along(list.positions_device, 0, list.len, list.len + t);
  list.k.narrow(1, list.len, t).copy_(zk);
  list.v.narrow(1, list.len, t).copy_(zv);
  list.positions_device.narrow(0, list.len, t).copy_(torch::tensor(positions, torch::kInt64));
  list.positions.insert(list.positions.end(), positions.begin(), positions.end());
  list.len += t;
}

void CommonKVCache::append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor&, const torch::Tensor&) {
  auto& x = pending_x_[static_cast<size_t>(layer)];
  if (!x.defined()) throw Error("CommonKVCache: the layer's input was not given (set_layer_input) before append");
  const int64_t b = x.size(0), t = x.size(1);
  if (batch_ == 0) batch_ = b;
  if (b != batch_ || k_pre_rope.size(2) != t) throw Error("CommonKVCache: batch or token count differs from the cache's");
  const int64_t g = bases_->group_of[static_cast<size_t>(layer)], r = layout_.rank;
  auto zk = torch::matmul(x.to(dtype_), bases_->down_k[static_cast<size_t>(g)].narrow(1, 0, r));  // [B, T, r]
  auto zv = torch::matmul(x.to(dtype_), bases_->down_v[static_cast<size_t>(g)].narrow(1, 0, r));
  Latents& list = own_[static_cast<size_t>(layer)];
  std::vector<int64_t> positions(static_cast<size_t>(t));  // a forward's tokens follow the committed ones
  std::iota(positions.begin(), positions.end(), committed_);
  push(list, zk, zv, positions);
  x = torch::Tensor();
}

torch::Tensor CommonKVCache::up(const torch::Tensor& z, const torch::Tensor& up_proj) const {
  const int64_t B = z.size(0), n = z.size(1);
  auto flat = torch::matmul(z, up_proj.narrow(1, 0, layout_.rank).transpose(0, 1));  // [B, n, Hkv D]
  return flat.view({B, n, config_.num_key_value_heads, config_.head_dim}).transpose(1, 2);
}

void CommonKVCache::visit_list(int layer, const Latents& list, const std::function<void(const KVBlock&)>& visit) const {
  const auto& uk = bases_->up_k[static_cast<size_t>(layer)];
  const auto& uv = bases_->up_v[static_cast<size_t>(layer)];
  for (int64_t s = 0; s < list.len; s += layout_.chunk_tokens) {
    const int64_t len = std::min(layout_.chunk_tokens, list.len - s);
    KVBlock b;
    b.positions = list.positions_device.narrow(0, s, len);
    b.k = rope_->apply(up(list.k.narrow(1, s, len), uk), b.positions);
    b.v = up(list.v.narrow(1, s, len), uv);
    b.min_position = list.positions[static_cast<size_t>(s)];
    b.max_position = list.positions[static_cast<size_t>(s + len - 1)];
    visit(b);
  }
}

void CommonKVCache::for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) {
  const int64_t g = bases_->group_of[static_cast<size_t>(layer)];
  if (g < static_cast<int64_t>(shared_.size())) visit_list(layer, shared_[static_cast<size_t>(g)], visit);
  visit_list(layer, own_[static_cast<size_t>(layer)], visit);
}

void CommonKVCache::advance(int64_t tokens) { committed_ += tokens; }

void CommonKVCache::merge_prompt() {
  const int64_t n = layout_.merge_tokens, G = bases_->layers_per_group;
  if (merged_) throw Error("CommonKVCache: the prompt is already merged");
  if (n > committed_) throw Error("CommonKVCache: merge range beyond the committed tokens");
  merged_ = true;
  const auto counts = commonkv_counts(n, bases_->merged_groups, layout_);
  if (counts.merged == 0 || bases_->merged_groups == 0) return;
  if (batch_ != 1) throw Error("CommonKVCache: merging keeps one token list per layer; batch must be 1");
  const int64_t lo = std::min(layout_.sink, n), m = n - counts.protected_tokens;
  // Similarity of the first and last layer's key latents per group, over the mergeable tokens
  // [lo, lo + m); the least similar `unmerged` over all groups stay per layer.
  std::vector<torch::Tensor> sims;
  for (int64_t g = 0; g < bases_->merged_groups; ++g) {
    const auto& first = own_[static_cast<size_t>(g * G)], & last = own_[static_cast<size_t>(g * G + G - 1)];
    auto a = first.k.narrow(1, lo, m)[0].to(torch::kFloat64), b = last.k.narrow(1, lo, m)[0].to(torch::kFloat64);
    sims.push_back(torch::cosine_similarity(a, b, 1, 1e-12));  // [m]
  }
  auto order = std::get<1>(torch::sort(torch::cat(sims).cpu(), /*stable=*/true, /*dim=*/0, /*descending=*/false));
  std::vector<char> merge(static_cast<size_t>(bases_->merged_groups * m), 1);
  const int64_t* o = order.data_ptr<int64_t>();
  for (int64_t i = 0; i < counts.unmerged; ++i) merge[static_cast<size_t>(o[i])] = 0;
  for (int64_t g = 0; g < bases_->merged_groups; ++g) {
    std::vector<int64_t> merged_pos, kept_rows;  // kept_rows: rows of each layer's list that stay
    for (int64_t j = 0; j < m; ++j)
      if (merge[static_cast<size_t>(g * m + j)]) merged_pos.push_back(lo + j);
    std::vector<char> is_merged(static_cast<size_t>(n), 0);
    for (int64_t p : merged_pos) is_merged[static_cast<size_t>(p)] = 1;
    const int64_t total = own_[static_cast<size_t>(g * G)].len;
    for (int64_t row = 0; row < total; ++row)
      if (row >= n || !is_merged[static_cast<size_t>(row)]) kept_rows.push_back(row);
    auto merged_index = torch::tensor(merged_pos, torch::kInt64).to(device_);
    auto kept_index = torch::tensor(kept_rows, torch::kInt64).to(device_);
    torch::Tensor sum_k, sum_v;
    for (int64_t l = g * G; l < g * G + G; ++l) {
      Latents& list = own_[static_cast<size_t>(l)];
      auto zk = list.k.narrow(1, 0, list.len), zv = list.v.narrow(1, 0, list.len);
      auto mk = zk.index_select(1, merged_index).to(torch::kFloat32), mv = zv.index_select(1, merged_index).to(torch::kFloat32);
      sum_k = sum_k.defined() ? sum_k + mk : mk;
      sum_v = sum_v.defined() ? sum_v + mv : mv;
      Latents kept;
      std::vector<int64_t> kept_positions;
      for (int64_t row : kept_rows) kept_positions.push_back(list.positions[static_cast<size_t>(row)]);
      push(kept, zk.index_select(1, kept_index), zv.index_select(1, kept_index), kept_positions);
      list = std::move(kept);
    }
    push(shared_[static_cast<size_t>(g)], (sum_k / double(G)).to(dtype_), (sum_v / double(G)).to(dtype_), merged_pos);
  }
}

int64_t CommonKVCache::bytes() const {
  int64_t tokens = 0;
  for (const auto& l : own_) tokens += l.len;
  for (const auto& s : shared_) tokens += s.len;
  return tokens * 2 * batch_ * layout_.rank * static_cast<int64_t>(c10::elementSize(dtype_));
}

int64_t CommonKVCache::full_bytes() const {
  return committed_ * config_.num_hidden_layers * 2 * batch_ * config_.num_key_value_heads * config_.head_dim *
         static_cast<int64_t>(c10::elementSize(dtype_));
}

std::pair<torch::Tensor, torch::Tensor> CommonKVCache::rebuilt(int layer) const {
  std::vector<std::pair<int64_t, std::pair<torch::Tensor, torch::Tensor>>> rows;  // position -> (zk, zv) [B, 1, r]
  auto collect = [&](const Latents& list) {
    for (int64_t i = 0; i < list.len; ++i)
      rows.push_back({list.positions[static_cast<size_t>(i)], {list.k.narrow(1, i, 1), list.v.narrow(1, i, 1)}});
  };
  const int64_t g = bases_->group_of[static_cast<size_t>(layer)];
  if (g < static_cast<int64_t>(shared_.size())) collect(shared_[static_cast<size_t>(g)]);
  collect(own_[static_cast<size_t>(layer)]);
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<torch::Tensor> zk, zv;
  for (auto& r : rows) zk.push_back(r.second.first), zv.push_back(r.second.second);
  return {up(torch::cat(zk, 1), bases_->up_k[static_cast<size_t>(layer)]),
          up(torch::cat(zv, 1), bases_->up_v[static_cast<size_t>(layer)])};
}

void CommonKVCache::reset() {
  for (auto& l : own_) l.len = 0, l.positions.clear();
  for (auto& s : shared_) s.len = 0, s.positions.clear();
  for (auto& x : pending_x_) x = torch::Tensor();
  merged_ = false;
  committed_ = 0;
}

}  // namespace echokv
