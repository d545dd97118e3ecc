// The CUDA paths of models/device.h in a build whose LibTorch has no CUDA: copies are plain, there
// is no page-locked memory and no device clock.
#include <ATen/core/Tensor.h>

#include "models/device.h"

namespace sefar::models {

bool cuda_compiled() {
  return false;
}

bool pinned_memory_available() {
  return false;
}

at::Tensor upload(const at::Tensor& host, const c10::Device& device) {
  return host.device() == device ? host : host.to(device);
}

void use_local_cuda_device(int) {}

std::unique_ptr<DeviceEventTimer> make_device_event_timer(const c10::Device&) {
  return nullptr;
}

}  // namespace sefar::models
