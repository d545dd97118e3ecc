// The optimisers, written out so their state has names (checkpoints) and reads the same on LibTorch
// 1.13 and 2.x.
// SGD, PyTorch's rule (dampening 0, no Nesterov): g = grad + wd p; buf = m buf + g (buf = g at
// first); p -= lr buf.
// AdamW (Loshchilov & Hutter): p -= lr wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <ATen/core/Tensor.h>

namespace torch::nn {
class Module;
}

namespace sefar::models {

struct Optimizer {
  bool adamw = false;
  double lr = 0, momentum = 0, weight_decay = 0, clip_grad_norm = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  // State (checkpointed).
  std::int64_t steps = 0;
  std::map<std::string, at::Tensor> momentum_buffers;  // SGD: buf; AdamW: m
  std::map<std::string, at::Tensor> second_moments;    // AdamW: v

  // The global gradient norm (0 without gradients).
  static double grad_norm(torch::nn::Module& model);
  // One update; `norm`: the global gradient norm (grad_norm()), for clipping.
  void step(torch::nn::Module& model, double norm);
  static void zero_grad(torch::nn::Module& model);
};

}  // namespace sefar::models
