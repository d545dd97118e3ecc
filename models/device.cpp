#include "models/device.h"
#include "util/errors.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/ops/dropout.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/softmax.h>
#include <torch/version.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <thread>

#if TORCH_VERSION_MAJOR >= 2
#include <ATen/ops/scaled_dot_product_attention.h>
#define SEFAR_HAVE_SDPA 1
#else
#define SEFAR_HAVE_SDPA 0
#endif

// LibTorch 2.4 replaced the per-device autocast functions (set_enabled, set_autocast_gpu_dtype, ...) by
// ones taking the device type; the old ones are deprecated there.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define SEFAR_AUTOCAST_DEVICE_API 1
#else
#define SEFAR_AUTOCAST_DEVICE_API 0
#endif

namespace sefar::models {

bool fused_attention_available() {
  return SEFAR_HAVE_SDPA != 0;
}

at::Tensor explicit_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              double dropout_p) {
  // Same operation order as the official Attention module: (q k^T) * scale, softmax, dropout, @ v.
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor w = at::matmul(q, k.transpose(-2, -1)) * scale;
  w = at::softmax(w, -1);
  if (dropout_p > 0) w = at::dropout(w, dropout_p, /*train=*/true);
  return at::matmul(w, v);
}

at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double dropout_p) {
#if SEFAR_HAVE_SDPA
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, dropout_p, /*is_causal=*/false);
#else
  (void)q;
  (void)k;
  (void)v;
  (void)dropout_p;
  throw std::runtime_error("fused attention needs LibTorch >= 2.0 (this build has " TORCH_VERSION ")");
#endif
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double dropout_p,
                     AttentionImpl impl) {
  switch (impl) {
    case AttentionImpl::kExplicit:
      return explicit_attention(q, k, v, dropout_p);
    case AttentionImpl::kFused:
      return fused_attention(q, k, v, dropout_p);
    case AttentionImpl::kAuto:
      break;
  }
  return SEFAR_HAVE_SDPA ? fused_attention(q, k, v, dropout_p) : explicit_attention(q, k, v, dropout_p);
}

namespace {

void check_autocast_device(c10::DeviceType device) {
  if (device != c10::DeviceType::CUDA && device != c10::DeviceType::CPU)
    throw std::invalid_argument(std::string("autocast is supported on CPU and CUDA, not ") +
                                c10::DeviceTypeName(device));
}

bool get_enabled(c10::DeviceType device) {
#if SEFAR_AUTOCAST_DEVICE_API
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void set_enabled(c10::DeviceType device, bool enabled) {
#if SEFAR_AUTOCAST_DEVICE_API
  at::autocast::set_autocast_enabled(device, enabled);
#else
  if (device == c10::DeviceType::CUDA)
    at::autocast::set_enabled(enabled);
  else
    at::autocast::set_cpu_enabled(enabled);
#endif
}

at::ScalarType get_dtype(c10::DeviceType device) {
#if SEFAR_AUTOCAST_DEVICE_API
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                         : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_dtype(c10::DeviceType device, at::ScalarType dtype) {
#if SEFAR_AUTOCAST_DEVICE_API
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == c10::DeviceType::CUDA)
    at::autocast::set_autocast_gpu_dtype(dtype);
  else
    at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

}  // namespace

AutocastGuard::AutocastGuard(c10::DeviceType device, bool enabled, at::ScalarType dtype)
    : device_((check_autocast_device(device), device)),
      prev_enabled_(get_enabled(device)),
      prev_dtype_(get_dtype(device)) {
  set_enabled(device_, enabled);
  set_dtype(device_, dtype);
  // As torch.autocast does: the cast cache lives while any autocast region is open.
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_enabled(device_, prev_enabled_);
  set_dtype(device_, prev_dtype_);
}

bool autocast_enabled(c10::DeviceType device) {
  check_autocast_device(device);
  return get_enabled(device);
}

c10::Device resolve_device(const std::string& name) {
  if (name == "auto") return at::hasCUDA() ? c10::Device(c10::DeviceType::CUDA) : c10::Device(c10::kCPU);
  const std::string expected = " (expected cpu, cuda, cuda:N or auto)";
  c10::optional<c10::Device> parsed;
  try {
    parsed = c10::Device(name);
  } catch (const c10::Error&) {  // malformed names ("tpu", "cuda:x", "")
    throw util::ParamError("device", "unknown device '" + name + "'" + expected);
  }
  const c10::Device d = *parsed;
  if (!d.is_cpu() && !d.is_cuda())
    throw util::ParamError("device", "unsupported device '" + name + "'" + expected);
  if (d.is_cuda() && !at::hasCUDA())
    throw util::ParamError("device", "device '" + name +
                                "' requested but this build/machine has no CUDA (use cpu or auto)");
  if (d.is_cuda() && d.has_index() && std::size_t(d.index()) >= at::getNumGPUs())
    throw util::ParamError("device", "device '" + name + "' requested but this machine has " +
                                std::to_string(int(at::getNumGPUs())) + " CUDA device(s)");
  return d;
}

void set_intra_op_threads(int threads, const std::string& who) {
  if (threads <= 0) return;
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  if (threads > cores) {
    std::fprintf(stderr, "%s: threads %d is more than the %d cores of this machine: using %d\n", who.c_str(),
                 threads, cores, cores);
    threads = cores;
  }
  at::set_num_threads(threads);
}

}  // namespace sefar::models
