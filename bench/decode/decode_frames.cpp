// sefar_bench_decode: the per-clip work of the decode_views pipeline, replayed on one thread, for
// the decode benchmark (bench/decode/run.sh).
//
// For every clip of a split list and every epoch it draws exactly what the `decode` node draws with
// draws=weak_strong (same seed, pass and list index, hence the same frames and the same short side),
// and reports per clip:
//   - the frames the union of the two draws needs, and the frames a forward pass must get through:
//     needed = last needed frame - keyframe at or before the first needed frame + 1;
//   - what our decoder actually did (DecodeStats: packets sent, packets sent as skippable non-reference
//     frames, frames returned);
//   - the CPU time (this thread) of open+index, decode+resize+RGB, and the views (crop, flip,
//     normalise to float [3, T, 224, 224]) of both draws.
// Output: one JSON object on stdout (or --json FILE). Single-threaded: CPU times are per core.
//
// Usage: sefar_bench_decode LIST [--seed N] [--epochs N] [--views 2,2,4] [--short-side MIN MAX]
//                                [--crop N] [--perturbation NAME] [--json FILE]
// Clip paths in LIST are relative to the list's folder (as split_source's default root).
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/random.h"
#include "io/split_list.h"
#include "io/temporal.h"
#include "io/video.h"
#include "io/views.h"

namespace {

using namespace sefar;

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

double wall_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "sefar_bench_decode: %s\nusage: sefar_bench_decode LIST [--seed N] [--epochs N] [--views 2,2,4] "
               "[--short-side MIN MAX] [--crop N] [--perturbation NAME] [--json FILE]\n",
               why.c_str());
  std::exit(2);
}

std::vector<int> parse_int_list(const std::string& s) {
  std::vector<int> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    auto comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    out.push_back(std::stoi(s.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string list_path, json_path, perturbation_name = "moderate";
  std::uint64_t seed = 0;
  int epochs = 1, crop_size = 224, min_side = 256, max_side = 320;
  std::vector<int> views{2, 2, 4};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value after " + a);
      return argv[++i];
    };
    if (a == "--seed") seed = std::stoull(next());
    else if (a == "--epochs") epochs = std::stoi(next());
    else if (a == "--views") views = parse_int_list(next());
    else if (a == "--short-side") {
      min_side = std::stoi(next());
      max_side = std::stoi(next());
    } else if (a == "--crop") crop_size = std::stoi(next());
    else if (a == "--perturbation") perturbation_name = next();
    else if (a == "--json") json_path = next();
    else if (!a.empty() && a[0] == '-') usage("unknown option " + a);
    else if (list_path.empty()) list_path = a;
    else usage("more than one list given");
  }
  if (list_path.empty()) usage("no split list given");

  io::set_ffmpeg_log(io::FfmpegLog::kErrors);
  auto root = std::filesystem::path(list_path).parent_path().string();
  io::SplitListOptions lopt;
  auto list = io::load_split_list(list_path, root, lopt);
  auto layout = io::make_layout(views);
  auto perturbation = io::parse_perturbation(perturbation_name);

  nlohmann::json clips = nlohmann::json::array();
  double total_open = 0, total_decode = 0, total_views = 0, total_wall = 0;
  const double wall_start = wall_seconds();
  for (int pass = 0; pass < epochs; ++pass) {
    for (std::size_t index = 0; index < list.clips.size(); ++index) {
      const auto& path = list.clips[index].path;
      const double w0 = wall_seconds();
      // Open and index (what the decode node does before drawing).
      double t0 = thread_cpu_seconds();
      io::VideoDecoder decoder;  // DecoderOptions defaults: threads 1, as the decode node's default
      decoder.open(path);
      const int n = decoder.frame_count();
      double t1 = thread_cpu_seconds();

      // The decode node's draws, weak_strong mode (nodes/decode.cpp): same streams.
      std::vector<io::ElementSample> draws;
      io::Rng weak(seed, pass, index, io::Purpose::frames, io::Draw::weak);
      io::Rng strong(seed, pass, index, io::Purpose::frames, io::Draw::strong);
      draws.push_back(io::sample_train(layout, n, weak));
      io::Rng prng(seed, pass, index, io::Purpose::perturb, io::Draw::strong);
      draws.push_back(io::perturb(perturbation, layout, io::sample_train(layout, n, strong), n, prng));
      int side = min_side;
      if (max_side > min_side) {
        io::Rng rng(seed, pass, index, io::Purpose::scale);
        side = rng.uniform_int(min_side, max_side);
      }
      auto u = io::union_indices(draws);
      io::ResizeSpec resize;
      resize.short_side = side;
      auto frames = decoder.decode(u.frames, resize);
      const auto stats = decoder.last_stats();
      double t2 = thread_cpu_seconds();

      // The views node, train mode: a crop and flip per draw, normalised float views.
      const io::Size size{frames.width, frames.height};
      std::size_t view_elements = 0;
      for (std::size_t d = 0; d < draws.size(); ++d) {
        auto draw = d == 0 ? io::Draw::weak : io::Draw::strong;
        io::Rng crop_rng(seed, pass, index, io::Purpose::crop, draw);
        io::Rng flip_rng(seed, pass, index, io::Purpose::flip, draw);
        auto crop = io::draw_crop(crop_rng, size, crop_size);
        bool flip = io::draw_flip(flip_rng, 0.5);
        io::ElementSample positions{u.positions[d]};
        auto tensors = io::make_views(frames, positions, crop, flip);
        for (const auto& t : tensors) view_elements += std::size_t(t.numel());
      }
      double t3 = thread_cpu_seconds();
      const double w1 = wall_seconds();

      // The keyframe a forward pass starts from, and the frames it must get through.
      const int first = u.frames.front(), last = u.frames.back();
      int start = 0;
      for (int k : decoder.keyframes())
        if (k <= first && k > start) start = k;
      nlohmann::json c;
      c["path"] = path;
      c["pass"] = pass;
      c["index"] = index;
      c["frames"] = n;
      c["keyframes"] = decoder.keyframes().size();
      c["union"] = u.frames.size();
      c["first_needed"] = first;
      c["last_needed"] = last;
      c["start_keyframe"] = start;
      c["needed"] = last - start + 1;
      c["short_side"] = side;
      c["resized"] = {frames.width, frames.height};
      c["packets_sent"] = stats.packets_sent;
      c["packets_skipped"] = stats.packets_skipped;
      c["frames_decoded"] = stats.frames_decoded;
      c["decoder_start_frame"] = stats.start_frame;
      c["view_elements"] = view_elements;
      c["cpu_open"] = t1 - t0;
      c["cpu_decode"] = t2 - t1;
      c["cpu_views"] = t3 - t2;
      c["wall"] = w1 - w0;
      total_open += t1 - t0;
      total_decode += t2 - t1;
      total_views += t3 - t2;
      total_wall += w1 - w0;
      clips.push_back(std::move(c));
    }
  }
  nlohmann::json out;
  out["list"] = list_path;
  out["seed"] = seed;
  out["epochs"] = epochs;
  out["views"] = views;
  out["short_side"] = {min_side, max_side};
  out["crop"] = crop_size;
  out["perturbation"] = perturbation_name;
  out["clips"] = clips;
  out["cpu_open"] = total_open;
  out["cpu_decode"] = total_decode;
  out["cpu_views"] = total_views;
  out["wall"] = total_wall;
  out["wall_total"] = wall_seconds() - wall_start;
  if (json_path.empty()) {
    std::cout << out.dump(1) << "\n";
  } else {
    std::ofstream f(json_path);
    f << out.dump(1) << "\n";
    if (!f) {
      std::fprintf(stderr, "sefar_bench_decode: cannot write %s\n", json_path.c_str());
      return 1;
    }
  }
  return 0;
}
