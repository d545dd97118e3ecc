// Model weights in safetensors: our own/official checkpoints (official state-dict names), timm ImageNet
// ViT weights into the spatial part, and saving.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

#include "models/timesformer.h"

namespace sefar::models {

struct LoadOptions {
  // strict: a key the model has but the file lacks (missing) or the file has but the model lacks
  // (unexpected) is an error. Non-strict: they are listed in the report. Shape mismatches are always
  // errors (every one reported by key with both shapes), and nothing is loaded when any check fails.
  bool strict = true;
  // A pos_embed for another grid is resized instead of rejected (listed in LoadReport::resized). The
  // official forward resizes with 'nearest', so loading that way reproduces it exactly.
  bool resize_pos_embed = true;
  bool bicubic = false;
};

struct LoadReport {
  std::vector<std::string> loaded;      // model keys filled from the file
  std::vector<std::string> missing;     // model keys the file lacks (left as they were)
  std::vector<std::string> unexpected;  // file keys the model lacks (ignored)
  std::vector<std::string> resized;     // "key: [file shape] -> [model shape]"
  std::string summary() const;          // one line, e.g. "loaded 46 tensors, 0 missing, 0 unexpected"
};

// The model's parameters and buffers by state-dict name.
std::map<std::string, at::Tensor> state_dict(const torch::nn::Module& model);

// Loads named tensors into the model (keys may carry a leading "module."; converted to each
// parameter's dtype and device). `source` names the origin in error messages (a file path).
LoadReport load_state_dict(torch::nn::Module& model, const std::map<std::string, at::Tensor>& tensors,
                           const LoadOptions& options = {}, const std::string& source = "tensors");
// Same, reading a safetensors file.
LoadReport load_weights(torch::nn::Module& model, const std::string& path, const LoadOptions& options = {});

// Writes the state dict to a safetensors file (atomic). For a MultiGranularViT the model config is
// stored in the metadata under "sefar.model_config" (JSON) so `model_config_from_weights` finds it.
void save_weights(const torch::nn::Module& model, const std::string& path,
                  const std::map<std::string, std::string>& metadata = {});
void save_weights(const MultiGranularViT& model, const std::string& path,
                  std::map<std::string, std::string> metadata = {});
// The config stored by save_weights; throws if the file has none.
ModelConfig model_config_from_weights(const std::string& path);

// timm ViT weights (cls_token, pos_embed, patch_embed.proj.*, blocks.N.{norm1,attn.*,norm2,mlp.*}.*,
// norm.*) into the backbone: as the official loader does, temporal_attn.* is copied from attn.* and
// temporal_norm1.* from norm1.*; temporal_fc keeps the TimeSformer initialisation (zero after block 0);
// pos_embed is resized bicubically to the model's grid; a 2-D patch projection is reshaped to a conv
// kernel. Classifier and other non-backbone timm keys are listed as unexpected; time_embed,
// temporal_fc and the fusion head as missing. With strict, any other missing backbone key or any
// unused timm key outside the classifier (head.*, fc_norm.*, pre_logits.*) is an error.
LoadReport load_timm_vit(MultiGranularViT& model, const std::map<std::string, at::Tensor>& tensors,
                         bool strict = true, const std::string& source = "tensors");
LoadReport load_timm_vit(MultiGranularViT& model, const std::string& path, bool strict = true);

}  // namespace sefar::models
