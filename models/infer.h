// `sefar infer`: a model config + weights, input views from a safetensors file, outputs to another.
//
// Input file (safetensors):
//   views.<i>       [B, C, T_i, H, W]  one per view, i = 0 .. V-1 (F32, F16, BF16 or F64; computed in F32)
//   mix.views.<i>   optional, same shapes: second input of Tube TokenMix
//   mix.masks.<i>   optional, BOOL (or U8) [P], [B, P] or [B, T_i, P]: true keeps the token of views.<i>
// Output file (safetensors, F32):
//   logits          [B, num_classes]
//   fused           [B, fusion_dim]   z, before the final dropout
//   features.<i>    [B, embed_dim]    f_i, the normed CLS feature of view i
//   metadata: "format": "sefar-infer-1", "sefar.model_config": the config as JSON, "weights": the path
// The model runs in evaluation mode (no dropout, no stochastic depth).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "models/config.h"

namespace sefar::models {

struct InferOptions {
  std::string device = "cpu";  // "cpu", "cuda", "cuda:N" or "auto"
  int64_t batch_size = 0;      // clips per forward pass; 0 = all at once
  bool strict = true;          // weights must match the model exactly
  // Told when the inputs' frame size is not the one the weights were trained at (the model still runs,
  // with its position embeddings resized). Null: a line on stderr.
  std::function<void(const std::string&)> warn;
};

void run_inference(const ModelConfig& config, const std::string& weights_path, const std::string& inputs_path,
                   const std::string& outputs_path, const InferOptions& options = {});

}  // namespace sefar::models
