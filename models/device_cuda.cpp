// The CUDA paths of models/device.h, compiled where LibTorch has CUDA (the PyTorch 2.x wheel). Each
// path checks at run time that a CUDA device is there; on a machine without one they fall back to the
// host behaviour, so the same binary runs everywhere.
#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <deque>
#include <utility>

#include "models/device.h"

namespace sefar::models {

bool cuda_compiled() {
  return true;
}

bool pinned_memory_available() {
  return at::hasCUDA();
}

at::Tensor upload(const at::Tensor& host, const c10::Device& device) {
  if (host.device() == device) return host;
  if (!device.is_cuda() || !host.device().is_cpu()) return host.to(device);
  // From pageable memory the driver copies through a staging buffer and the host waits; page-locked,
  // the copy is a DMA the host only enqueues.
  const at::Tensor source = host.is_pinned() ? host : host.pin_memory();
  const c10::cuda::CUDAGuard device_guard(device);
  const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(device.index());
  const c10::cuda::CUDAStream copy = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
  at::Tensor out;
  {
    const c10::cuda::CUDAStreamGuard stream_guard(copy);
    // Allocated for the copy stream; the pinned source's block is kept until the copy is done by the
    // caching host allocator (it records an event on the copy stream).
    out = source.to(device, /*non_blocking=*/true);
  }
  at::cuda::CUDAEvent copied;
  copied.record(copy);
  copied.block(compute);  // the compute stream waits on the device; the host goes on
  // The caching allocator must not hand `out`'s memory to another tensor before the compute stream
  // is done with it.
  c10::cuda::CUDACachingAllocator::recordStream(out.storage().data_ptr(), compute);
  return out;
}

void use_local_cuda_device(int local_rank) {
  const int gpus = at::hasCUDA() ? int(at::getNumGPUs()) : 0;
  if (gpus > 0) c10::cuda::set_device(c10::DeviceIndex(local_rank % gpus));
}

namespace {

class CudaEventTimer final : public DeviceEventTimer {
 public:
  explicit CudaEventTimer(const c10::Device& device) : device_(device) {}

  void begin() override {
    pending_.emplace_back(at::cuda::CUDAEvent(cudaEventDefault), at::cuda::CUDAEvent(cudaEventDefault));
    pending_.back().first.record(c10::cuda::getCurrentCUDAStream(device_.index()));
  }

  void end() override {
    if (pending_.empty()) return;
    pending_.back().second.record(c10::cuda::getCurrentCUDAStream(device_.index()));
    // Fold the intervals the device has finished, without waiting: the list stays short.
    while (pending_.size() > 1 && pending_.front().second.query()) fold();
  }

  double seconds() override {
    while (!pending_.empty()) {
      pending_.front().second.synchronize();
      fold();
    }
    return total_ms_ / 1000.0;
  }

 private:
  void fold() {
    auto& [start, stop] = pending_.front();
    if (start.isCreated() && stop.isCreated()) total_ms_ += double(start.elapsed_time(stop));
    pending_.pop_front();
  }

  c10::Device device_;
  std::deque<std::pair<at::cuda::CUDAEvent, at::cuda::CUDAEvent>> pending_;
  double total_ms_ = 0;
};

}  // namespace

std::unique_ptr<DeviceEventTimer> make_device_event_timer(const c10::Device& device) {
  if (!device.is_cuda() || !at::hasCUDA()) return nullptr;
  return std::make_unique<CudaEventTimer>(device);
}

}  // namespace sefar::models
