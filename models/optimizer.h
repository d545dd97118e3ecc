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

  // The global gradient norm as a float64 0-dim tensor on the parameters' device (0 without
  // gradients); computed there, not read.
  static at::Tensor grad_norm(torch::nn::Module& model);
  // One update; `norm`: the global gradient norm (grad_norm()), for clipping; `apply`: a bool 0-dim
  // tensor, false for a non-finite step, whose update then leaves parameters and state as they were.
  // The choice is made on the device (a select per tensor), so the host never waits for it; where
  // `apply` is true the arithmetic is exactly the unmasked update's. `steps` counts every call;
  // uncount_steps() takes back the calls found non-finite later.
  void step(torch::nn::Module& model, const at::Tensor& norm, const at::Tensor& apply);
  void uncount_steps(std::int64_t n) { steps -= n; }
  static void zero_grad(torch::nn::Module& model);
};

}  // namespace sefar::models
