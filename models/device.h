// The device seam: everything that differs between LibTorch 1.13 (Debian, CPU) and 2.x (CUDA machine)
// lives behind these few functions, so model and training code never test TORCH_VERSION themselves.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

#include "models/config.h"

namespace sefar::models {

// True where at::scaled_dot_product_attention exists (LibTorch >= 2.0): flash / memory-efficient
// kernels on CUDA, a fused math kernel on CPU.
bool fused_attention_available();

// softmax(q k^T / sqrt(d)) v with dropout on the attention weights; q, k, v are [N, heads, L, d].
// dropout_p is applied as given: pass 0 in evaluation.
at::Tensor explicit_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              double dropout_p);
// at::scaled_dot_product_attention; throws std::runtime_error where fused_attention_available() is false.
at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double dropout_p);
// Dispatches on impl (kAuto: fused when available).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double dropout_p,
                     AttentionImpl impl);

// Sets the autocast state of one device type for its lifetime and restores the previous state after.
// The usual use is AutocastGuard guard(c10::DeviceType::CUDA, true, at::kBFloat16) around forward
// passes; enabled=false switches autocast off inside an enabled region.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, bool enabled, at::ScalarType dtype = at::kBFloat16);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool prev_enabled_;
  at::ScalarType prev_dtype_;
};

bool autocast_enabled(c10::DeviceType device);

// "cpu", "cuda", "cuda:N", or "auto" (CUDA when present). Throws std::invalid_argument (message
// `param "device": ...`) for malformed names and for CUDA requests the machine cannot serve.
c10::Device resolve_device(const std::string& name);

// Sets LibTorch's intra-op threads from a `threads` parameter (0 leaves them as they are). More threads
// than the machine has cores only make every operation wait for the others: capped at the core count,
// saying so on stderr with `who` (the node or model).
void set_intra_op_threads(int threads, const std::string& who);

}  // namespace sefar::models
