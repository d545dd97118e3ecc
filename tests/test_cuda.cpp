// The CUDA paths (models/device.h, the step on a GPU, NCCL): each case needs a CUDA device and says
// "skipped: no CUDA device" without one (ctest then reports the test as skipped). The first case runs
// everywhere: it checks that the build compiled the CUDA paths exactly when its LibTorch has CUDA.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/version.h>

#include <doctest/doctest.h>

#include <cstdio>
#include <memory>
#include <string>

#include "models/device.h"
#include "models/distributed.h"
#include "models/optimizer.h"
#include "models/timesformer.h"
#include "models/trainer.h"
#include "nodes/batch.h"
#include "toy_trainer.h"

using namespace sefar;
using namespace sefar::models;

namespace {

bool no_gpu() {
  if (at::hasCUDA()) return false;
  std::printf("skipped: no CUDA device\n");
  return true;
}

TrainerOptions toy_options(const std::string& device) {
  TrainerOptions o = testing::toy_trainer_options();
  o.device = device;
  o.epochs = 2;
  o.warmup_epochs = 0;
  o.seed = 3;
  return o;
}

std::vector<at::Tensor> toy_views(std::int64_t batch, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<at::Tensor> views;
  for (std::int64_t t : {2, 2, 4}) views.push_back(at::randn({batch, 3, t, 32, 32}, gen));
  return views;
}

}  // namespace

TEST_CASE("cuda: without a GPU every CUDA path falls back to the host") {
  // Runs everywhere without a GPU, in the CUDA build too: its paths check for a device at run time.
  if (at::hasCUDA()) return;
  INFO("LibTorch " << TORCH_VERSION << (cuda_compiled() ? " with CUDA" : " without CUDA"));
  auto t = at::arange(6, at::kFloat);
  CHECK(upload(t, c10::Device(c10::kCPU)).data_ptr() == t.data_ptr());
  CHECK_FALSE(pinned_memory_available());
  CHECK_FALSE(make_device_event_timer(c10::Device(c10::kCUDA, 0)));
  CHECK_FALSE(make_device_event_timer(c10::Device(c10::kCPU)));
  use_local_cuda_device(1);  // nothing to select
  CHECK(resolve_device("auto").is_cpu());
  CHECK_THROWS_WITH_AS(resolve_device("cuda"), doctest::Contains("param \"device\""), std::invalid_argument);
  // The batch node's pin_memory: yes needs a GPU; collate unpinned works.
  std::vector<nodes::ClipViewsPtr> clips;
  auto c = std::make_shared<nodes::ClipViews>();
  c->draws = {{at::randn({3, 2, 8, 8})}};
  clips.push_back(c);
  CHECK_FALSE(nodes::collate(clips, false).draws[0][0].is_pinned());
}

TEST_CASE("cuda: upload from pageable and page-locked memory on a side stream") {
  if (no_gpu()) return;
  const c10::Device gpu(c10::kCUDA, 0);
  auto host = at::randn({64, 3, 8, 16, 16});
  auto pinned = host.pin_memory();
  CHECK(pinned.is_pinned());
  for (const auto& source : {host, pinned}) {
    auto on_gpu = upload(source, gpu);
    CHECK(on_gpu.is_cuda());
    // Used at once on the current stream: the stream waited for the copy.
    auto sum = (on_gpu * 2).sum().to(at::kCPU);
    CHECK(sum.item<double>() == doctest::Approx((host * 2).sum().item<double>()).epsilon(1e-5));
  }
}

TEST_CASE("cuda: batches are stacked in page-locked memory where asked") {
  if (no_gpu()) return;
  std::vector<nodes::ClipViewsPtr> clips;
  for (int i = 0; i < 3; ++i) {
    auto c = std::make_shared<nodes::ClipViews>();
    c->clip.path = "clip" + std::to_string(i);
    c->draws = {{at::randn({3, 2, 8, 8}), at::randn({3, 4, 8, 8})}};
    clips.push_back(c);
  }
  auto pinned = nodes::collate(clips, true), pageable = nodes::collate(clips, false);
  for (std::size_t v = 0; v < 2; ++v) {
    CHECK(pinned.draws[0][v].is_pinned());
    CHECK_FALSE(pageable.draws[0][v].is_pinned());
    CHECK(at::equal(pinned.draws[0][v], pageable.draws[0][v]));
  }
}

TEST_CASE("cuda: CUDA-event timer measures device work, not the time to enqueue it") {
  if (no_gpu()) return;
  auto timer = make_device_event_timer(c10::Device(c10::kCUDA, 0));
  REQUIRE(timer);
  auto a = at::randn({2048, 2048}, at::TensorOptions().device(at::kCUDA));
  for (int i = 0; i < 3; ++i) {
    timer->begin();
    for (int k = 0; k < 10; ++k) a = at::tanh(at::matmul(a, a) * 1e-3);
    timer->end();
  }
  const double seconds = timer->seconds();
  CHECK(seconds > 0);
  CHECK(seconds < 60);
}

TEST_CASE("cuda: a training step on the GPU matches the CPU step (fp32, TF32 off)") {
  if (no_gpu()) return;
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  auto labels = at::tensor(std::vector<std::int64_t>{0, 1}, at::kLong);
  auto truth = at::tensor(std::vector<std::int64_t>{1, 0, 1, 0}, at::kLong);
  auto scale = at::ones({4, 3});
  auto weak = toy_views(4, 7), strong = toy_views(4, 8), labeled = toy_views(2, 1);
  std::vector<StepStats> stats;
  for (const std::string device : {"cpu", "cuda"}) {
    auto o = toy_options(device);
    o.token_mix = false;  // its draw is host-side and equal; kept out so only arithmetic differs
    Trainer trainer(o);
    stats.push_back(trainer.step(0, labeled, labels, &weak, &strong, &scale, &truth));
  }
  CHECK(stats[1].loss == doctest::Approx(stats[0].loss).epsilon(1e-4));
  CHECK(stats[1].loss_sup == doctest::Approx(stats[0].loss_sup).epsilon(1e-4));
  CHECK(stats[1].grad_norm == doctest::Approx(stats[0].grad_norm).epsilon(1e-3));
  CHECK(stats[1].eta_mean == doctest::Approx(stats[0].eta_mean).epsilon(1e-4));
  CHECK_FALSE(stats[1].nonfinite);
}

TEST_CASE("cuda: bf16 autocast and fused attention on the GPU") {
  if (no_gpu()) return;
  auto opts = at::TensorOptions().device(at::kCUDA);
  auto q = at::randn({2, 4, 197, 64}, opts), k = at::randn({2, 4, 197, 64}, opts),
       v = at::randn({2, 4, 197, 64}, opts);
  auto expected = explicit_attention(q, k, v, 0.0);
  auto fused = fused_attention(q, k, v, 0.0);
  CHECK(at::allclose(fused, expected, 1e-3, 1e-3));
  {
    AutocastGuard guard(c10::DeviceType::CUDA, true, at::kBFloat16);
    auto y = at::matmul(q, k.transpose(-2, -1));
    CHECK((y.scalar_type() == at::kBFloat16));
  }
  CHECK((at::matmul(q, k.transpose(-2, -1)).scalar_type() == at::kFloat));
}

TEST_CASE("cuda: the NCCL communicator of a one-process job") {
  if (no_gpu()) return;
  DistributedEnv env;
  env.master_port = 29731;
  CommunicatorOptions co;
  co.backend = "nccl";
  co.device = "cuda";
  Communicator communicator(env, co);
  CHECK(communicator.backend() == "nccl");
  auto model = std::make_shared<MultiGranularViT>(ModelConfig::tiny(2, {2, 2, 4}));
  model->to(c10::Device(c10::kCUDA, 0));
  for (auto& p : model->parameters()) p.mutable_grad() = at::ones_like(p);
  communicator.average_gradients(*model);
  for (auto& p : model->parameters()) CHECK(at::equal(p.grad(), at::ones_like(p)));
  CHECK(communicator.any(true));
  CHECK_FALSE(communicator.any(false));
}
