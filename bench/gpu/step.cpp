// sefar_bench_step: the time of one semi-supervised SeFAR training step (models::Trainer::step, the
// computation the step nodes run) on random inputs made once on the device, its throughput, peak
// device memory and model FLOP utilisation (bench/gpu/run.sh).
//
// Usage: sefar_bench_step [--model tiny|S|B] [--crop N] [--views 2,2,4] [--teacher-passes K]
//                         [--labeled B] [--unlabeled U] [--classes C] [--device cpu|cuda|auto]
//                         [--precision fp32|tf32|bf16] [--attention auto|explicit|fused]
//                         [--warmup W] [--steps N] [--threads T] [--seed S] [--peak-tflops X]
//                         [--json FILE] [--flops-only]
// Exit status: 0 measured, 2 bad arguments, 3 out of device memory (the JSON says so), 1 other errors.
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/config.h"
#include "models/device.h"
#include "models/trainer.h"

// Set by bench/CMakeLists.txt when the LibTorch links CUDA (cmake/sefar_torch.cmake's torch_cuda):
// models/device.h has no device synchronise or memory query, so the CUDA runtime is used here directly.
#if SEFAR_BENCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

namespace {

using sefar::models::ModelConfig;
using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------------
// Analytic FLOP count (multiply-accumulates; 1 MAC = 2 FLOPs). Matrix products only: softmax,
// LayerNorm, GELU, dropout and the optimiser/EMA updates are elementwise and left out, as MFU counts
// usually do. For one clip, per view of T frames, with P = (crop / patch)^2 patches, width D, depth L,
// MLP width H = mlp_ratio * D, C input channels, patch p:
//   patch embedding  T P (C p^2) D
//   per block        temporal: qkv 3 T P D^2, q k^T and attn v 2 P T^2 D, proj T P D^2, temporal_fc T P D^2
//                    spatial over T frames of (1 + P) tokens (CLS prepended): qkv 3 T (1+P) D^2,
//                      q k^T and attn v 2 T (1+P)^2 D, proj T (1+P) D^2
//                    MLP on 1 + T P tokens (the CLS once): 2 H D each
// and once per clip the head: per view post_fusion0 D F, per view pair post_fusion1 2 D F,
// global_fusion (pairs + views) F^2, fc F classes (F = fusion_dim).
//
// Check against DESIGN §5 (~196 GMAC for a TimeSformer-B clip of 8 frames at 224): one view of T = 8,
// D 768, L 12, P 196 counts 0.925 (embedding) + 12 x 16.24 = 195.8 GMAC. SeFAR-B's views 2,2,4 (8
// frames in all) count 195.8 GMAC as well: shorter temporal attention, two more CLS tokens, and the
// head (2 MMAC). SeFAR-S (D 384): 50.6 GMAC. (--flops-only prints these.)
//
// A semi-supervised step with labeled batch B, unlabeled batch U and K teacher passes:
//   student forward  (B + U) clips (labeled + strong views, one pass) + U Tube-TokenMix clips, whose
//                    second input adds one patch embedding per view: Fs = (B + 2U) F_clip + U F_embed
//   student backward ~2 x forward (gradients of activations and of weights): 3 Fs in all
//   teacher          no gradient; backbone once on the U weak clips, head K times: U F_backbone + K U F_head
// e.g. SeFAR-S 8+24: 19.5 TFLOP; SeFAR-B 8+24: 75.3 TFLOP (DESIGN §5: ~73). The official step runs
// the whole teacher K times (3 Fs + K U F_clip: 41.3 and 160 TFLOP); its MFU would count those too.
struct ClipMacs {
  double embed = 0;     // patch embedding of every view
  double backbone = 0;  // embedding + blocks of every view
  double head = 0;      // fusion head and classifier
  double total() const { return backbone + head; }
};

ClipMacs clip_macs(const ModelConfig& c) {
  const double d = double(c.embed_dim), p = double(c.num_patches()), h = double(c.embed_dim) * c.mlp_ratio;
  const double patch = double(c.in_chans * c.patch_size * c.patch_size);
  const double blocks = double(c.depth);
  ClipMacs m;
  for (int64_t tv : c.views) {
    const double t = double(tv);
    const double embed = t * p * patch * d;
    const double temporal = 5 * t * p * d * d + 2 * p * t * t * d;
    const double spatial = 4 * t * (1 + p) * d * d + 2 * t * (1 + p) * (1 + p) * d;
    const double mlp = (1 + t * p) * 2 * h * d;
    m.embed += embed;
    m.backbone += embed + blocks * (temporal + spatial + mlp);
  }
  const double f = double(c.fusion_dim), views = double(c.num_views()), pairs = double(c.num_pairs());
  m.head = views * d * f + pairs * 2 * d * f + (pairs + views) * f * f + f * double(c.num_classes);
  return m;
}

double step_flops(const ClipMacs& m, int64_t labeled, int64_t unlabeled, int64_t passes) {
  const double b = double(labeled), u = double(unlabeled), k = double(passes);
  const double student_forward = (b + 2 * u) * m.total() + u * m.embed;
  const double teacher = u * m.backbone + k * u * m.head;
  return 2 * (3 * student_forward + teacher);
}

// ---------------------------------------------------------------------------------------------------

struct Args {
  std::string model = "S", device = "auto", precision = "fp32", attention = "auto", json_path;
  int64_t crop = 0;  // 0: the model size's own (224 S/B, 32 tiny)
  std::vector<int64_t> views = {2, 2, 4};
  int64_t passes = 10, labeled = 8, unlabeled = 24, classes = 99;
  int warmup = 2, steps = 5, threads = 0;
  std::uint64_t seed = 0;
  std::optional<double> peak_tflops;
  bool flops_only = false;
};

const char* kUsage =
    "usage: sefar_bench_step [--model tiny|S|B] [--crop N] [--views 2,2,4] [--teacher-passes K]\n"
    "                        [--labeled B] [--unlabeled U] [--classes C] [--device cpu|cuda|auto]\n"
    "                        [--precision fp32|tf32|bf16] [--attention auto|explicit|fused]\n"
    "                        [--warmup W] [--steps N] [--threads T] [--seed S] [--peak-tflops X]\n"
    "                        [--json FILE] [--flops-only]\n";

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "sefar_bench_step: %s\n%s", why.c_str(), kUsage);
  std::exit(2);
}

int64_t to_int(const std::string& flag, const std::string& s, int64_t min) {
  std::size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || s.empty() || v < min)
    usage(flag + ": expected an integer >= " + std::to_string(min) + ", got '" + s + "'");
  return v;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--flops-only") {
      a.flops_only = true;
      continue;
    }
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) usage(flag + " needs a value");
    const std::string v = argv[++i];
    if (flag == "--model") {
      a.model = v;
    } else if (flag == "--crop") {
      a.crop = to_int(flag, v, 1);
    } else if (flag == "--views") {
      a.views.clear();
      std::stringstream ss(v);
      for (std::string item; std::getline(ss, item, ',');) a.views.push_back(to_int(flag, item, 1));
      if (a.views.empty()) usage("--views: expected e.g. 2,2,4");
    } else if (flag == "--teacher-passes") {
      a.passes = to_int(flag, v, 1);
    } else if (flag == "--labeled") {
      a.labeled = to_int(flag, v, 1);
    } else if (flag == "--unlabeled") {
      a.unlabeled = to_int(flag, v, 2);  // Tube TokenMix needs two clips to permute
    } else if (flag == "--classes") {
      a.classes = to_int(flag, v, 2);
    } else if (flag == "--device") {
      a.device = v;
    } else if (flag == "--precision") {
      if (v != "fp32" && v != "tf32" && v != "bf16") usage("--precision: fp32, tf32 or bf16");
      a.precision = v;
    } else if (flag == "--attention") {
      a.attention = v;
    } else if (flag == "--warmup") {
      a.warmup = int(to_int(flag, v, 0));
    } else if (flag == "--steps") {
      a.steps = int(to_int(flag, v, 1));
    } else if (flag == "--threads") {
      a.threads = int(to_int(flag, v, 0));
    } else if (flag == "--seed") {
      a.seed = std::uint64_t(to_int(flag, v, 0));
    } else if (flag == "--peak-tflops") {
      try {
        a.peak_tflops = std::stod(v);
      } catch (const std::exception&) {
        usage("--peak-tflops: expected a number");
      }
    } else if (flag == "--json") {
      a.json_path = v;
    } else {
      usage("unknown option " + flag);
    }
  }
  return a;
}

// Dense peak TFLOP/s of the matrix units for this precision, from the data sheets (H100 SXM5; the H200
// has the same compute). fp32 without TF32 is LibTorch's default for matrix products.
std::optional<double> datasheet_peak(const std::string& device_name, const std::string& precision) {
  struct Peak {
    const char* match;
    double bf16, tf32, fp32;
  };
  // Most specific first: the PCIe and NVL H100 run lower clocks and fewer SMs than the SXM5.
  static const Peak peaks[] = {{"H100 PCIe", 756, 378, 51},
                               {"H100 NVL", 835, 418, 60},
                               {"H100", 989, 494, 67},
                               {"H200", 989, 494, 67}};
  for (const auto& p : peaks)
    if (device_name.find(p.match) != std::string::npos)
      return precision == "bf16" ? p.bf16 : precision == "tf32" ? p.tf32 : p.fp32;
  return std::nullopt;
}

// Peak resident memory of this process (kB line of /proc/self/status), in bytes.
std::int64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}

struct DeviceProbe {
  bool cuda = false;
  int index = 0;

  void synchronize() const {
#if SEFAR_BENCH_CUDA
    if (cuda) c10::cuda::device_synchronize();
#endif
  }
  void reset_peak() const {
#if SEFAR_BENCH_CUDA
    if (cuda) c10::cuda::CUDACachingAllocator::resetPeakStats(c10::DeviceIndex(index));
#endif
  }
  // {allocated, reserved} peaks of the caching allocator (CUDA), or the peak RSS (CPU).
  json peak_memory() const {
#if SEFAR_BENCH_CUDA
    if (cuda) {
      const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::DeviceIndex(index));
      constexpr std::size_t kAggregate = 0;  // StatType::AGGREGATE (its namespace moved between releases)
      return {{"kind", "cuda caching allocator"},
              {"allocated_bytes", stats.allocated_bytes[kAggregate].peak},
              {"reserved_bytes", stats.reserved_bytes[kAggregate].peak}};
    }
#endif
    return {{"kind", "peak RSS (VmHWM)"}, {"rss_bytes", peak_rss_bytes()}};
  }
  std::string name() const {
#if SEFAR_BENCH_CUDA
    if (cuda) {
      cudaDeviceProp prop{};
      if (cudaGetDeviceProperties(&prop, index) == cudaSuccess) return prop.name;
      return "CUDA device " + std::to_string(index);
    }
#endif
    return "cpu (" + std::to_string(std::thread::hardware_concurrency()) + " cores)";
  }
};

void write_json_atomic(const std::string& path, const json& j) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

bool out_of_memory(const std::string& what) {
  return what.find("out of memory") != std::string::npos || what.find("OutOfMemory") != std::string::npos;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  using namespace sefar;
  ModelConfig config;
  try {
    config = ModelConfig::preset(a.model);
    config.views = a.views;
    config.num_classes = a.classes;
    if (a.crop > 0) config.img_size = a.crop;
    config.attention = models::attention_impl_from_string(a.attention);
    config.validate();
  } catch (const std::exception& e) {
    usage(e.what());
  }
  const ClipMacs macs = clip_macs(config);
  const double flops = step_flops(macs, a.labeled, a.unlabeled, a.passes);
  std::printf("model %s, crop %lld, views", a.model.c_str(), static_cast<long long>(config.img_size));
  for (auto t : config.views) std::printf(" %lld", static_cast<long long>(t));
  std::printf(
      ": forward %.2f GMAC per clip (embedding %.3f, head %.4f); step %lld+%lld, K=%lld: %.3f TFLOP\n",
      macs.total() * 1e-9, macs.embed * 1e-9, macs.head * 1e-9, static_cast<long long>(a.labeled),
      static_cast<long long>(a.unlabeled), static_cast<long long>(a.passes), flops * 1e-12);

  json out{{"model", a.model},
           {"crop", config.img_size},
           {"views", config.views},
           {"teacher_passes", a.passes},
           {"labeled", a.labeled},
           {"unlabeled", a.unlabeled},
           {"classes", a.classes},
           {"precision", a.precision},
           {"attention", a.attention},
           {"torch_version", TORCH_VERSION},
           {"gmac_per_clip_forward", macs.total() * 1e-9},
           {"tflop_per_step", flops * 1e-12}};
  if (a.flops_only) {
    write_json_atomic(a.json_path, out);
    return 0;
  }

  DeviceProbe probe;
  try {
    models::TrainerOptions o;
    o.model = config;
    o.device = a.device;
    o.bf16 = a.precision == "bf16";
    o.seed = a.seed;
    o.teacher_passes = int(a.passes);
    // A semi-supervised epoch past the warm-up: every stage runs, with a non-zero unlabeled weight.
    o.epochs = 30;
    o.warmup_epochs = 5;
    const int epoch = 10;
    const c10::Device device = models::resolve_device(a.device);
    probe.cuda = device.is_cuda();
    probe.index = device.has_index() ? device.index() : 0;
    const std::string device_name = probe.name();
    out["device"] = device.str();
    out["device_name"] = device_name;
    if (a.precision == "tf32") at::globalContext().setFloat32MatmulPrecision("high");
    const int threads =
        a.threads > 0 ? a.threads : (probe.cuda ? 0 : int(std::max(1u, std::thread::hardware_concurrency())));
    models::set_intra_op_threads(threads, "sefar_bench_step");
    out["threads"] = at::get_num_threads();

    models::Trainer trainer(o);

    // Inputs made once on the device: what the step costs, without the data pipeline or host copies.
    const auto opts = at::TensorOptions().device(device);
    const int64_t s = config.img_size, b = a.labeled, u = a.unlabeled;
    std::vector<at::Tensor> labeled, weak, strong;
    for (int64_t t : config.views) {
      labeled.push_back(at::randn({b, 3, t, s, s}, opts));
      weak.push_back(at::randn({u, 3, t, s, s}, opts));
      strong.push_back(at::randn({u, 3, t, s, s}, opts));
    }
    const at::Tensor labels = at::randint(a.classes, {b}, opts.dtype(at::kLong));
    const at::Tensor scale = at::ones({u, 3}, opts);

    auto now = [] { return std::chrono::steady_clock::now(); };
    std::vector<double> ms;
    int nonfinite = 0;
    for (int i = 0; i < a.warmup + a.steps; ++i) {
      if (i == a.warmup) probe.reset_peak();  // the peak of the timed steps (the teacher exists by now)
      probe.synchronize();
      const auto t0 = now();
      const auto stats = trainer.step(epoch, labeled, labels, &weak, &strong, &scale);
      probe.synchronize();
      const double step_ms = std::chrono::duration<double, std::milli>(now() - t0).count();
      nonfinite += stats.nonfinite ? 1 : 0;
      if (i >= a.warmup) ms.push_back(step_ms);
      std::printf("%s step %d: %.1f ms (loss %.4f)\n", i < a.warmup ? "warm-up" : "timed", i, step_ms,
                  stats.loss);
      std::fflush(stdout);
    }
    const double med = median(ms);
    const double clips_per_s = double(b + u) / (med * 1e-3);
    const double achieved = flops / (med * 1e-3) * 1e-12;
    // <= 0: no peak known for this device (a plain double: GCC 12 misreads an optional here).
    double peak = a.peak_tflops.value_or(0.0);
    if (!a.peak_tflops && probe.cuda) peak = datasheet_peak(device_name, a.precision).value_or(0.0);
    out["warmup"] = a.warmup;
    out["steps"] = a.steps;
    out["ms_per_step"] = {{"median", med}, {"each", ms}};
    out["clips_per_second"] = clips_per_s;
    out["achieved_tflops"] = achieved;
    out["peak_memory"] = probe.peak_memory();
    out["nonfinite_steps"] = nonfinite;
    out["peak_tflops"] = peak > 0 ? json(peak) : json(nullptr);
    out["mfu"] = peak > 0 ? json(achieved / peak) : json(nullptr);
    char mfu[96] = "n/a (no peak for this device: --peak-tflops)";
    if (peak > 0) std::snprintf(mfu, sizeof mfu, "%.1f%% of %g TFLOP/s", 100 * achieved / peak, peak);
    std::printf("%s on %s: %.1f ms/step (median of %d), %.2f clips/s, %.3f TFLOP/s achieved, MFU %s\n",
                a.precision.c_str(), device_name.c_str(), med, a.steps, clips_per_s, achieved, mfu);
    std::printf("peak memory: %s\n", out["peak_memory"].dump().c_str());
    if (nonfinite) std::fprintf(stderr, "warning: %d timed step(s) were non-finite (no update)\n", nonfinite);
    write_json_atomic(a.json_path, out);
    return 0;
  } catch (const std::exception& e) {
    const bool oom = out_of_memory(e.what());
    out["error"] = oom ? "out of memory" : e.what();
    if (oom) out["peak_memory"] = probe.peak_memory();
    std::fprintf(stderr, "sefar_bench_step: %s\n", e.what());
    try {
      write_json_atomic(a.json_path, out);
    } catch (const std::exception& w) {
      std::fprintf(stderr, "sefar_bench_step: %s\n", w.what());
    }
    return oom ? 3 : 1;
  }
}
