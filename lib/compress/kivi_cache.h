// KIVI (Liu et al. 2024, "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache"):
// keys quantized per channel, values per token, asymmetric (min and scale per group, b bits:
// q = round((x - min) / scale), scale = (max - min) / (2^b - 1)), with recent tokens in full
// precision, following the official implementation's cache policy:
//   keys    a full-precision tail of fewer than `residual` tokens; when it reaches `residual`,
//           the whole tail is quantized as one block: per (head, channel), groups of `group`
//           consecutive tokens (residual % group == 0). Keys are stored with RoPE, as KIVI does.
//   values  the most recent `residual` tokens in full precision; each older token quantized
//           per (head, token) in groups of `group` channels (one group when group >= head_dim).
// Tokens of the current forward are attended in full precision (KIVI's prefill attends to the
// unquantized states) and quantized when the forward commits (advance). Codes are packed
// 8 / b to a byte; scales and minima are stored in the cache's dtype (KIVI: fp16), and bytes()
// counts codes, scales, minima and the full-precision tails. Attention dequantizes one block
// (`residual` tokens) at a time, so no full-precision copy of the quantized part ever exists.
#pragma once
#include <memory>
#include <vector>

#include "cache/kv_cache.h"
#include "model/config.h"
#include "model/rope.h"

namespace echokv {

struct KiviOptions {
  int bits = 2;            // 2 or 4 (8: int8 groups)
  int64_t group = 32;      // tokens per key group, channels per value group
  int64_t residual = 128;  // full-precision recent tokens (see above)
};

// Quantized groups along the last dimension of x [..., n] (n % group == 0): codes uint8
// [..., n] in 0 .. 2^bits - 1, and scale / min [..., n / group] in `stored` (the codes are
// computed against the stored, rounded minimum and scale; a constant group has scale 0 and
// codes 0). bits: 2, 4 or 8.
struct QuantizedGroups {
  torch::Tensor codes, scale, min;
};
QuantizedGroups quantize_groups(const torch::Tensor& x, int bits, int64_t group,
                                torch::ScalarType stored = torch::kFloat32);
// codes uint8 [..., n], scale / min [..., n / group] -> float32 [..., n].
torch::Tensor dequantize_groups(const torch::Tensor& codes, const torch::Tensor& scale, const torch::Tensor& min,
                                int64_t group);
// 8 / bits codes per byte along the last dimension (n % (8 / bits) == 0); code i of a byte in
// bits [i x bits, (i + 1) x bits).
torch::Tensor pack_codes(const torch::Tensor& codes, int bits);
torch::Tensor unpack_codes(const torch::Tensor& packed, int bits);

// KIVI's policy over one list of tokens shared by `heads` KV heads (a layer of KiviCache: all
// heads; a compacted head of KiviCompactedCache: one), tokens in the order they were added,
// each with its original position. Keys with RoPE.
class KiviTokenList {
 public:
  KiviTokenList(int64_t batch, int64_t heads, int64_t head_dim, KiviOptions options, torch::Device device,
                torch::ScalarType dtype);
  // k (with RoPE), v: [B, heads, T, D]; positions: T original positions. Attended in full
  // precision until commit().
  void add_pending(const torch::Tensor& k, const torch::Tensor& v, const std::vector<int64_t>& positions);
  void commit();  // the pending tokens join the list under KIVI's policy
  // Blocks of (k, v, positions, min / max position) in list order: quantized key blocks, the
  // key tail, the pending tokens; head / kv_heads / is_only are the caller's.
  void visit(const std::function<void(KVBlock&)>& emit) const;
  int64_t bytes() const;      // codes, scales, minima, full-precision tails and pending tokens
  int64_t length() const { return committed_; }
  int64_t pending() const { return pending_k_.defined() ? pending_k_.size(2) : 0; }
  int64_t quantized_keys() const { return static_cast<int64_t>(key_blocks_.size()) * o_.residual; }
  int64_t quantized_values() const { return values_quantized_; }
  int64_t blocks() const;     // how many blocks visit() emits

 private:
  struct KeyBlock {            // `residual` tokens
    torch::Tensor packed;      // uint8 [B, H, D, residual x bits / 8]
    torch::Tensor scale, min;  // dtype [B, H, D, residual / group]
  };
  void commit_keys(const torch::Tensor& k);    // k: [B, H, T, D]
  void commit_values(const torch::Tensor& v);  // v: [B, H, T, D]
  torch::Tensor block_keys(const KeyBlock& block) const;            // -> [B, H, residual, D] dtype
  torch::Tensor values_between(int64_t from, int64_t to) const;     // committed list entries [from, to)
  torch::Tensor positions_between(int64_t from, int64_t to) const;  // [to - from] int64 on the device

  KiviOptions o_;
  int64_t batch_, heads_, head_dim_, value_group_, element_size_;
  torch::Device device_;
  torch::ScalarType dtype_;
  std::vector<KeyBlock> key_blocks_;
  torch::Tensor key_tail_;                                  // [B, H, residual, D], key_tail_len_ used
  int64_t key_tail_len_ = 0;
  torch::Tensor value_packed_, value_scale_, value_min_;    // [B, H, cap, D x bits / 8], [B, H, cap, D / vgroup]
  int64_t values_quantized_ = 0;
  torch::Tensor value_tail_;                                // [B, H, tail cap, D], value_tail_len_ used (oldest first)
  int64_t value_tail_len_ = 0;
  torch::Tensor pending_k_, pending_v_;                     // this forward's tokens
  std::vector<int64_t> positions_, pending_positions_;      // host: committed, pending
  torch::Tensor positions_device_;                          // [cap] committed positions
  bool contiguous_ = true;                                  // positions are 0 .. n - 1 (no device copy kept)
  int64_t committed_ = 0;
};

// Checks KIVI's options against a head size (clear errors).
void check_kivi_options(const KiviOptions& options, int64_t head_dim);

class KiviCache : public KVCache {
 public:
  KiviCache(const ModelConfig& config, std::shared_ptr<const Rope> rope, int64_t batch, KiviOptions options,
            torch::Device device, torch::ScalarType dtype);

  int64_t next_position() const override { return committed_; }
  void append(int layer, const torch::Tensor& k_pre_rope, const torch::Tensor& v, const torch::Tensor& positions) override;
  void for_each_block(int layer, const std::function<void(const KVBlock&)>& visit) override;
  void advance(int64_t tokens) override;
  int64_t bytes() const override;
  int64_t full_bytes() const override;
  void reset() override;

  // Tokens whose keys / values are stored quantized (the same in every layer).
  int64_t quantized_keys() const { return layers_.at(0).quantized_keys(); }
  int64_t quantized_values() const { return layers_.at(0).quantized_values(); }

 private:
  ModelConfig config_;
  std::shared_ptr<const Rope> rope_;
  KiviOptions o_;
  int64_t batch_;
  torch::Device device_;
  torch::ScalarType dtype_;
  std::vector<KiviTokenList> layers_;
  int64_t committed_ = 0;
};

}  // namespace echokv
