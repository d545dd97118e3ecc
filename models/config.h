// Configuration of the multi-granular TimeSformer (DESIGN §2 "Model"). Free of LibTorch so that
// pipeline parsing and validation do not pay for torch headers.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "util/enum_table.h"

namespace sefar::models {

// Which attention kernel the model uses (see models/device.h).
enum class AttentionImpl {
  kAuto,      // fused where LibTorch has it (2.x), explicit otherwise
  kExplicit,  // softmax(Q K^T / sqrt(d)) V written out
  kFused,     // at::scaled_dot_product_attention; an error where it does not exist
};

// How a model built from scratch is initialised (weights loaded afterwards replace it either way).
enum class ParamInit {
  kOfficial,  // timm/TimeSformer: truncated normal (std 0.02) for linear layers, temporal_fc of every
              // block after the first zeroed, position and CLS embeddings ~ N(0, 0.02)
  kTorch,     // LibTorch's default for every layer (Kaiming-uniform linears), zero embeddings; small
              // models trained from scratch leave their initial plateau much sooner (pipelines/synthetic/sefar.json)
};

inline constexpr auto kAttentionImpls = util::enum_table<AttentionImpl>(
    {
        {AttentionImpl::kAuto, "auto"},
        {AttentionImpl::kExplicit, "explicit"},
        {AttentionImpl::kFused, "fused"},
    },
    "attention implementation");
inline constexpr auto kParamInits = util::enum_table<ParamInit>(
    {
        {ParamInit::kOfficial, "official"},
        {ParamInit::kTorch, "torch"},
    },
    "initialisation");

struct ModelConfig {
  std::string size = "tiny";  // preset this was built from ("tiny", "S", "B" or "custom"); informational
  int64_t img_size = 32;      // square input side the position embeddings are laid out for
  int64_t patch_size = 8;
  int64_t in_chans = 3;
  int64_t embed_dim = 64;
  int64_t depth = 2;
  int64_t num_heads = 4;
  double mlp_ratio = 4.0;
  bool qkv_bias = true;
  // Frames per view (official SAMPLE_FRAMES). The last view is the coarse-level element.
  std::vector<int64_t> views = {2, 2, 4};
  int64_t num_classes = 99;
  int64_t fusion_dim = 256;     // width of post_fusion0/1 and global_fusion (official 256)
  double drop_rate = 0.0;       // backbone dropout: after attention proj, in the MLP, on embeddings
  double attn_drop_rate = 0.0;  // dropout on attention weights
  double drop_path_rate = 0.1;  // stochastic depth, linearly increasing from 0 over the blocks
  double head_dropout = 0.5;    // before fc
  AttentionImpl attention = AttentionImpl::kAuto;
  ParamInit init = ParamInit::kOfficial;

  // Presets. tiny: 32 px, patch 8, D 64, 2 blocks, 4 heads (tests, quickstart). S: ViT-S/16 (D 384,
  // 12 blocks, 6 heads). B: ViT-B/16 (D 768, 12 blocks, 12 heads). S and B use 224 px input.
  static ModelConfig tiny(int64_t num_classes = 99, std::vector<int64_t> views = {2, 2, 4});
  static ModelConfig small(int64_t num_classes = 99, std::vector<int64_t> views = {2, 2, 4});
  static ModelConfig base(int64_t num_classes = 99, std::vector<int64_t> views = {2, 2, 4});
  // "tiny", "S"/"small", "B"/"base"; throws std::invalid_argument otherwise.
  static ModelConfig preset(const std::string& size);

  int64_t grid() const { return img_size / patch_size; }
  int64_t num_patches() const { return grid() * grid(); }
  int64_t head_dim() const { return embed_dim / num_heads; }
  int64_t num_views() const { return static_cast<int64_t>(views.size()); }
  int64_t num_pairs() const { return num_views() * (num_views() - 1) / 2; }

  // Throws std::invalid_argument naming every inconsistent field.
  void validate() const;
};

// JSON form: {"size": "S", "num_classes": 99, "views": [2,2,4], ...}. "size" selects a preset, the
// other fields override it; unknown fields are an error (a typo must not fall back to a default).
ModelConfig model_config_from_json(const nlohmann::json& j);
nlohmann::json model_config_to_json(const ModelConfig& c);

inline std::string to_string(AttentionImpl impl) {
  return kAttentionImpls.name(impl);
}
inline std::string to_string(ParamInit init) {
  return kParamInits.name(init);
}
// Throw std::invalid_argument naming the valid names.
inline ParamInit param_init_from_string(const std::string& s) {
  return kParamInits.parse_or_throw(s);
}
inline AttentionImpl attention_impl_from_string(const std::string& s) {
  return kAttentionImpls.parse_or_throw(s);
}

}  // namespace sefar::models
