#include "io/synth.h"
#include "util/atomic_file.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

namespace sefar::io {

namespace {

constexpr double kPi = 3.14159265358979323846;

enum class Move { TurnCw, TurnCcw, Jump };
struct Step {
  Move move;
  double turns = 0;  // for turns
};

struct ClassDef {
  const char* name;
  std::vector<Step> steps;
};

const std::vector<ClassDef>& class_defs() {
  // Turns are at most one full revolution per routine so that the 8 frames a clip is sampled at
  // (DESIGN §2: one per segment) see the figure move less than half a turn between samples;
  // faster spins alias and clockwise becomes indistinguishable from anticlockwise.
  static const std::vector<ClassDef> defs = {
      {"turn_cw_half", {{Move::TurnCw, 0.5}}},
      {"turn_ccw_half", {{Move::TurnCcw, 0.5}}},
      {"turn_cw_1", {{Move::TurnCw, 1}}},
      {"turn_ccw_1", {{Move::TurnCcw, 1}}},
      {"jump_then_turn_cw_half", {{Move::Jump}, {Move::TurnCw, 0.5}}},
      {"turn_cw_half_then_jump", {{Move::TurnCw, 0.5}, {Move::Jump}}},
      {"jump_then_turn_ccw_half", {{Move::Jump}, {Move::TurnCcw, 0.5}}},
      {"turn_ccw_half_then_jump", {{Move::TurnCcw, 0.5}, {Move::Jump}}},
      {"turn_cw_half_then_ccw_half", {{Move::TurnCw, 0.5}, {Move::TurnCcw, 0.5}}},
      {"turn_ccw_half_then_cw_half", {{Move::TurnCcw, 0.5}, {Move::TurnCw, 0.5}}},
      {"turn_cw_3_4", {{Move::TurnCw, 0.75}}},
      {"turn_ccw_3_4", {{Move::TurnCcw, 0.75}}},
  };
  return defs;
}

// splitmix64: a clip's generator depends only on (seed, clip index), never on thread or order.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

struct Rgb {
  double r, g, b;
};

Rgb random_colour(std::mt19937_64& rng, double lo, double hi) {
  std::uniform_real_distribution<double> u(lo, hi);
  return {u(rng), u(rng), u(rng)};
}

double smoothstep(double u) {
  u = std::clamp(u, 0.0, 1.0);
  return u * u * (3 - 2 * u);
}

}  // namespace

std::vector<std::string> synth_class_names(int num_classes, int first_class) {
  const int routines = int(class_defs().size());
  if (num_classes < 2 || num_classes > routines)
    throw std::invalid_argument(
        fmt::format("synthetic dataset: num_classes must be in [2, {}], got {}", routines, num_classes));
  if (first_class < 0 || first_class > routines - num_classes)
    throw std::invalid_argument(fmt::format(
        "synthetic dataset: first_class must be in [0, {}] with {} classes (there are {} routines), got {}",
        routines - num_classes, num_classes, routines, first_class));
  std::vector<std::string> names;
  for (int i = 0; i < num_classes; ++i) names.push_back(class_defs()[first_class + i].name);
  return names;
}

Frames render_synth_clip(const SynthOptions& o, int label, std::uint64_t index) {
  const auto& def = class_defs().at(o.first_class + label);
  std::mt19937_64 rng(mix(mix(o.seed) ^ (index * 0x632be59bd9b4e019ULL + 1)));
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  auto uniform = [&](double a, double b) { return a + (b - a) * u01(rng); };

  const int n = std::uniform_int_distribution<int>(o.min_frames, o.max_frames)(rng);
  const int w = o.width, h = o.height;
  const double s = std::min(w, h);

  const double nuis = o.nuisance, scale = o.figure_scale;

  // Nuisances: colours, a textured background, position, size, starting orientation, timing.
  Rgb bg1 = random_colour(rng, 50 - 40 * nuis, 50 + 40 * nuis), bg2 = random_colour(rng, 50 - 40 * nuis, 50 + 40 * nuis);
  Rgb body = random_colour(rng, 140 - 50 * nuis, 140 + 50 * nuis), head = random_colour(rng, 225, 255);
  double stripe_angle = uniform(0, kPi), stripe_freq = uniform(0.05, 0.25) * 64.0 / s,
         stripe_amp = nuis * uniform(0.2, 0.8);
  double cx = uniform(0.45, 0.55) * w, cy = uniform(0.5, 0.56) * h;
  double length = scale * uniform(0.28, 0.32) * s, thickness = length * uniform(0.22, 0.3);
  double head_radius = scale * uniform(0.1, 0.12) * s;
  double theta0 = -kPi / 2 + uniform(-kPi / 6, kPi / 6);
  double drift_x = uniform(-0.05, 0.05) * w / n, drift_y = uniform(-0.02, 0.02) * h / n;
  double jump_height = uniform(0.08, 0.12) * h;
  double active = uniform(0.7, 0.9);
  double start = uniform(0.05, 1.0 - active - 0.05);
  std::vector<double> weights;
  for (std::size_t i = 0; i < def.steps.size(); ++i) weights.push_back(uniform(0.8, 1.2));
  double total_weight = 0;
  for (double x : weights) total_weight += x;

  Frames frames;
  frames.count = n;
  frames.width = w;
  frames.height = h;
  frames.rgb.resize(std::size_t(n) * w * h * 3);
  std::normal_distribution<double> noise(0.0, o.noise);

  for (int t = 0; t < n; ++t) {
    double time = n > 1 ? double(t) / (n - 1) : 0.0;
    double theta = theta0, lift = 0;
    double cursor = start;
    for (std::size_t i = 0; i < def.steps.size(); ++i) {
      double span = active * weights[i] / total_weight;
      double progress = smoothstep((time - cursor) / span);
      const Step& step = def.steps[i];
      if (step.move == Move::TurnCw) theta += 2 * kPi * step.turns * progress;
      if (step.move == Move::TurnCcw) theta -= 2 * kPi * step.turns * progress;
      if (step.move == Move::Jump && time > cursor && time < cursor + span)
        lift += jump_height * std::sin(kPi * (time - cursor) / span);
      cursor += span;
    }
    double x0 = cx + drift_x * t, y0 = cy + drift_y * t - lift;
    double dx = std::cos(theta), dy = std::sin(theta);
    // Body: a segment from the foot (x0, y0) to x0 + L d; head: a disc at its far end.
    double hx = x0 + length * dx, hy = y0 + length * dy;
    std::uint8_t* out = frames.frame(t);
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        double px = x + 0.5, py = y + 0.5;
        double stripe = 0.5 + 0.5 * std::sin(stripe_freq * (px * std::cos(stripe_angle) + py * std::sin(stripe_angle)));
        double m = stripe_amp * stripe;
        Rgb c{bg1.r * (1 - m) + bg2.r * m, bg1.g * (1 - m) + bg2.g * m, bg1.b * (1 - m) + bg2.b * m};
        double rx = px - x0 - 0.5 * length * dx, ry = py - y0 - 0.5 * length * dy;
        double along = rx * dx + ry * dy, across = -rx * dy + ry * dx;
        if (std::fabs(along) <= 0.5 * length && std::fabs(across) <= 0.5 * thickness) c = body;
        double ex = px - hx, ey = py - hy;
        if (ex * ex + ey * ey <= head_radius * head_radius) c = head;
        std::uint8_t* p = out + (std::size_t(y) * w + x) * 3;
        p[0] = std::uint8_t(std::clamp(c.r + noise(rng), 0.0, 255.0));
        p[1] = std::uint8_t(std::clamp(c.g + noise(rng), 0.0, 255.0));
        p[2] = std::uint8_t(std::clamp(c.b + noise(rng), 0.0, 255.0));
      }
    }
    frames.indices.push_back(t);
  }
  return frames;
}

SynthResult generate_synth_dataset(const SynthOptions& o, const std::function<void(int, int)>& progress) {
  namespace fs = std::filesystem;
  auto names = synth_class_names(o.num_classes, o.first_class);
  if (o.out_dir.empty()) throw std::invalid_argument("synthetic dataset: no output directory");
  if (o.width < 16 || o.height < 16 || o.width % 2 || o.height % 2)
    throw std::invalid_argument(fmt::format("synthetic dataset: width and height must be even and >= 16, got {}x{}",
                                            o.width, o.height));
  if (o.min_frames < 1 || o.max_frames < o.min_frames)
    throw std::invalid_argument(fmt::format("synthetic dataset: need 1 <= min_frames <= max_frames, got {} and {}",
                                            o.min_frames, o.max_frames));
  if (o.train_per_class < 1 || o.val_per_class < 0)
    throw std::invalid_argument("synthetic dataset: train_per_class must be >= 1 and val_per_class >= 0");
  if (!(o.labeled_fraction > 0 && o.labeled_fraction <= 1))
    throw std::invalid_argument(fmt::format("synthetic dataset: labeled_fraction must be in (0, 1], got {}",
                                            o.labeled_fraction));
  if (o.width > 4096 || o.height > 4096)
    throw std::invalid_argument(
        fmt::format("synthetic dataset: width and height must be <= 4096, got {}x{}", o.width, o.height));
  if (o.max_frames > 100000)
    throw std::invalid_argument(
        fmt::format("synthetic dataset: max_frames must be <= 100000, got {}", o.max_frames));
  if (o.train_per_class > 1000000 || o.val_per_class > 1000000)
    throw std::invalid_argument("synthetic dataset: at most 1000000 clips per class and split");
  if (!(o.fps > 0 && o.fps <= 1000))
    throw std::invalid_argument(fmt::format("synthetic dataset: fps must be in (0, 1000], got {}", o.fps));
  if (!(o.nuisance >= 0 && o.nuisance <= 1))
    throw std::invalid_argument(fmt::format("synthetic dataset: nuisance must be in [0, 1], got {}", o.nuisance));
  if (!(o.figure_scale >= 0.25 && o.figure_scale <= 1.6))
    throw std::invalid_argument(
        fmt::format("synthetic dataset: figure_scale must be in [0.25, 1.6], got {}", o.figure_scale));
  if (!(o.noise >= 0 && o.noise <= 255))
    throw std::invalid_argument(fmt::format("synthetic dataset: noise must be in [0, 255], got {}", o.noise));
  if (o.threads < 1 || o.threads > 1024)
    throw std::invalid_argument(
        fmt::format("synthetic dataset: threads must be in [1, 1024], got {}", o.threads));
  fs::create_directories(fs::path(o.out_dir) / "videos");

  struct Job {
    int label;
    std::uint64_t index;
    int split;  // 0 labeled, 1 unlabeled, 2 val
  };
  std::vector<Job> jobs;
  int labeled_per_class = std::max(1, int(std::lround(o.labeled_fraction * o.train_per_class)));
  std::uint64_t index = 0;
  for (int c = 0; c < o.num_classes; ++c) {
    for (int i = 0; i < o.train_per_class; ++i) jobs.push_back({c, index++, i < labeled_per_class ? 0 : 1});
    for (int i = 0; i < o.val_per_class; ++i) jobs.push_back({c, index++, 2});
  }
  std::vector<SynthClip> clips(jobs.size());
  std::atomic<std::size_t> next{0};
  std::atomic<int> done{0};
  std::mutex mutex;
  std::exception_ptr error;
  auto worker = [&] {
    while (true) {
      std::size_t j = next++;
      if (j >= jobs.size()) return;
      try {
        Frames frames = render_synth_clip(o, jobs[j].label, jobs[j].index);
        std::string rel = fmt::format("videos/{}_{:05d}.mp4", names[jobs[j].label], jobs[j].index);
        EncoderOptions enc;
        enc.codec = o.codec;
        enc.preset = "veryfast";
        write_video((fs::path(o.out_dir) / rel).string(), frames, o.fps, enc);
        clips[j] = SynthClip{rel, jobs[j].label, frames.count};
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!error) error = std::current_exception();
        next = jobs.size();
        return;
      }
      int d = ++done;
      if (progress) {
        std::lock_guard<std::mutex> lock(mutex);
        progress(d, int(jobs.size()));
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, o.threads); ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);

  // Lists are shuffled deterministically so that a prefix is not one class.
  SynthResult result;
  for (std::size_t j = 0; j < jobs.size(); ++j)
    (jobs[j].split == 0 ? result.train : jobs[j].split == 1 ? result.unlabeled : result.val).push_back(clips[j]);
  std::mt19937_64 rng(mix(o.seed ^ 0x5157));
  for (auto* list : {&result.train, &result.unlabeled, &result.val}) std::shuffle(list->begin(), list->end(), rng);

  auto write_list = [&](const std::string& name, const std::vector<SynthClip>& list) {
    std::string text;
    for (const auto& c : list) text += c.path + ' ' + std::to_string(c.label) + '\n';
    util::write_file_atomic((fs::path(o.out_dir) / name).string(), text);
  };
  write_list("train.csv", result.train);
  write_list("unlabel.csv", result.unlabeled);
  write_list("val.csv", result.val);
  std::string classes;
  for (std::size_t i = 0; i < names.size(); ++i) classes += std::to_string(i) + ' ' + names[i] + '\n';
  util::write_file_atomic((fs::path(o.out_dir) / "classes.txt").string(), classes);
  return result;
}

}  // namespace sefar::io
