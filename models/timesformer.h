// The multi-granular TimeSformer of SeFAR (official `multi_granular_vit`, DESIGN §2 "Model"):
// a ViT with divided space-time attention shared by all views, one learned temporal embedding per
// view, and the pairwise/global fusion head.
//
// Parameter names equal the official state dict, e.g. for 2 blocks and views {2, 2, 4}:
//   vit.model.cls_token [1,1,D]   vit.model.pos_embed [1,1+P,D]   vit.model.patch_embed.proj.{weight,bias}
//   vit.model.time_embed.{0,1,2} [1,T_i,D]
//   vit.model.blocks.N.{norm1, attn.qkv, attn.proj, temporal_norm1, temporal_attn.qkv,
//                       temporal_attn.proj, temporal_fc, norm2, mlp.fc1, mlp.fc2}.{weight,bias}
//   vit.model.norm.{weight,bias}
//   post_fusion1 (2D->256, pairs)  post_fusion0 (D->256, views)  global_fusion ((pairs+views)*256->256)
//   ln1 (after post_fusion1)  ln2 (after post_fusion0)  ln3 (after global_fusion)  fc (256->classes)
// Only this header's torch dependency is <torch/nn/module.h>; the layers are defined in the .cpp so that
// files using the model do not compile LibTorch's layer headers.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <memory>
#include <vector>

#include "models/config.h"

namespace torch::nn {
class LinearImpl;
class LayerNormImpl;
}  // namespace torch::nn

namespace sefar::models {

namespace detail {
class VisionTransformer;
}

// Tube TokenMix input (DESIGN §2): after patch embedding, token = mask ? token(x) : token(x2).
struct TokenMix {
  // The second input, one tensor per view, each the same shape as the corresponding first input.
  std::vector<at::Tensor> views;
  // One bool mask per view over the patch positions (row-major over the patch grid): [P] shared by the
  // batch, [B, P] per clip (both identical across time: a tube), or [B, T, P] per frame.
  std::vector<at::Tensor> masks;
};

struct HeadOutput {
  at::Tensor fused;   // z = LN(GELU(global_fusion(...))), [B, fusion_dim], before the final dropout
  at::Tensor logits;  // [B, num_classes]
};

struct ModelOutput {
  std::vector<at::Tensor> features;  // f_i: the normed CLS token per view, [B, D] each
  at::Tensor fused;                  // z, [B, fusion_dim]
  at::Tensor logits;                 // [B, num_classes]
};

class MultiGranularViT : public torch::nn::Module {
 public:
  // Builds the model with the official initialisation (reset_parameters()). Throws
  // std::invalid_argument for an invalid config.
  explicit MultiGranularViT(const ModelConfig& config);
  ~MultiGranularViT() override;

  const ModelConfig& config() const { return config_; }

  // views[i]: [B_i, C, T, H, W] float (H, W multiples of the patch size; T normally config.views[i],
  // other lengths resize the temporal embedding). Views with equal T and size share one backbone pass.
  ModelOutput forward(const std::vector<at::Tensor>& views, const TokenMix* mix = nullptr);

  // Backbone only: f_i per view.
  std::vector<at::Tensor> backbone(const std::vector<at::Tensor>& views, const TokenMix* mix = nullptr);
  // Head on per-view features; the final dropout follows is_training() or the explicit flag.
  HeadOutput head(const std::vector<at::Tensor>& features);
  HeadOutput head(const std::vector<at::Tensor>& features, bool dropout_active);
  // The fusion part of the head (deterministic): z from f_i.
  at::Tensor fuse(const std::vector<at::Tensor>& features);
  // dropout (when active) then fc.
  at::Tensor classify(const at::Tensor& fused, bool dropout_active);
  // Monte-Carlo dropout for the teacher: K draws of the head's dropout on the same features, as one
  // batched pass over z repeated K times. Returns logits [K, B, num_classes]. Valid as the teacher's
  // K passes when backbone_stochastic() is false (then the backbone output is the same in every pass).
  at::Tensor head_samples(const std::vector<at::Tensor>& features, int64_t k);

  // The teacher's K Monte-Carlo passes on `views`: logits [K, B, num_classes] with the head's dropout
  // active. The backbone runs once when it is deterministic (backbone_stochastic() false); otherwise
  // the K passes run as one batch of K*B clips, never K sequential passes.
  at::Tensor monte_carlo_logits(const std::vector<at::Tensor>& views, int64_t k);

  // True when a forward pass of the backbone is random: training mode with any backbone dropout or
  // stochastic depth. (The head's dropout is not included.)
  bool backbone_stochastic() const;

  // The official initialisation: backbone Linear weights truncated normal (std 0.02, bias 0),
  // LayerNorm 1/0, cls_token and pos_embed truncated normal 0.02, time_embed 0, temporal_fc 0 except in
  // block 0; patch embedding and head layers keep PyTorch's default initialisation, as officially.
  void reset_parameters();

  detail::VisionTransformer& vit() { return *vit_; }

 private:
  ModelConfig config_;
  std::shared_ptr<detail::VisionTransformer> vit_;
  std::shared_ptr<torch::nn::LinearImpl> post_fusion1_, post_fusion0_, global_fusion_, fc_;
  std::shared_ptr<torch::nn::LayerNormImpl> ln1_, ln2_, ln3_;
};

std::shared_ptr<MultiGranularViT> make_model(const ModelConfig& config);

// Number of scalar parameters.
int64_t parameter_count(const torch::nn::Module& module);

// Resizes a [1, 1 + gh0*gw0, D] position embedding (CLS first, square source grid) to a gh x gw grid.
// bicubic=false uses PyTorch's 'nearest' (what the official forward does for other input sizes),
// true uses bicubic without corner alignment (timm's resampling of ImageNet weights). Throws if the
// source token count is not 1 + a square.
at::Tensor resize_pos_embed(const at::Tensor& pos_embed, int64_t grid_h, int64_t grid_w, bool bicubic);

// A time embedding [1, T0, D] for T frames: itself when T0 == T, else PyTorch's 'nearest' along time
// (the official forward's F.interpolate when the clip length differs). [1, T, D].
at::Tensor resize_time_embed(const at::Tensor& time_embed, int64_t frames);

}  // namespace sefar::models
