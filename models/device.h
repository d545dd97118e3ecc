// The device seam: everything that differs between LibTorch 1.13 (Debian, CPU) and 2.x (CUDA machine)
// lives behind these few functions, so model and training code never test TORCH_VERSION themselves.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <memory>
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

// "cpu", "cuda", "cuda:N", or "auto" (CUDA when present; "cuda" and "auto" mean the current CUDA
// device, see use_local_cuda_device). Throws std::invalid_argument (message
// `param "device": ...`) for malformed names and for CUDA requests the machine cannot serve.
c10::Device resolve_device(const std::string& name);

// Sets LibTorch's intra-op threads from a `threads` parameter (0 leaves them as they are). More threads
// than the machine has cores only make every operation wait for the others: capped at the core count,
// saying so on stderr with `who` (the node or model).
void set_intra_op_threads(int threads, const std::string& who);

// ---- CUDA paths (models/device_cuda.cpp in builds whose LibTorch has CUDA, else device_cpu.cpp) ----

// True where this build's LibTorch was compiled with CUDA (whether or not a GPU is present).
bool cuda_compiled();

// Whether host batches should live in page-locked memory: only where a CUDA device is present
// (page-locked memory needs the CUDA driver), so that their copies to it run asynchronously.
bool pinned_memory_available();

// `host` on `device`. To a CUDA device: the copy runs on a side stream of the device (page-locked
// source: asynchronous to the host; an unpinned one is pinned first), and the current stream waits
// for it on the device, not the host; the result is marked in use by the current stream for the
// caching allocator. Elsewhere, or already there: `host.to(device)`.
at::Tensor upload(const at::Tensor& host, const c10::Device& device);

// Device time of work issued between begin() and end() on the current CUDA stream, from CUDA events
// (a host timer would measure only the time to enqueue it). Intervals accumulate; seconds() waits for
// the last one. Not thread-safe: one owner, or calls under the owner's lock.
class DeviceEventTimer {
 public:
  virtual ~DeviceEventTimer() = default;
  virtual void begin() = 0;
  virtual void end() = 0;
  virtual double seconds() = 0;
};

// A data-parallel process on a machine with several GPUs: makes GPU `local_rank` the current CUDA
// device, so that "cuda" and "auto" name it (one GPU per process). Nothing without CUDA.
void use_local_cuda_device(int local_rank);

// A timer for CUDA devices; null elsewhere (the host clock is the device clock there).
std::unique_ptr<DeviceEventTimer> make_device_event_timer(const c10::Device& device);

}  // namespace sefar::models
