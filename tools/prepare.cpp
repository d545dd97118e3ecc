// `sefar prepare finegym`: options, console output and exit status around io/finegym_prepare.h.
#include "tools/prepare.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "graph/diagnostics.h"
#include "graph/stop.h"
#include "io/finegym.h"
#include "io/finegym_prepare.h"
#include "io/split_list.h"

namespace sefar::tools {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitInvalid = 2;
constexpr int kExitSkipped = 3;
constexpr int kExitStorage = 74;

const char* const kFineGymUsage =
    R"(usage: sefar prepare finegym OUT_DIR --annotation FILE --videos DIR [options]

Cuts every sub-action of FineGym's annotation out of its downloaded source video into
OUT_DIR/<video>_<event>_<action>.mp4 (e.g. Z0bBRwAzKe0_E_004093_004127_A_0010_0012.mp4), the
names the official Gym99/Gym288 split lists use. Steps from download to training: docs/FINEGYM.md.

options:
  --annotation FILE   finegym_annotation_info_v1.1.json (required)
  --videos DIR        the downloaded source videos, named <video id>.mp4, .mkv or .webm (required)
  --list FILE         an official split list ("/root/video/<clip>.mp4 <label>" lines): only the clips
                      the lists name are cut, and a copy of each list naming the prepared clips (paths
                      relative to it, clips not prepared left out) is written to --lists-out under
                      the same file name (repeatable; without it every annotated sub-action is cut)
  --lists-out DIR     where the rewritten lists and classes.txt go (default: OUT_DIR)
  --categories FILE   gym99_categories.txt or gym288_categories.txt ("Clabel: N; set: S; Glabel: G;
                      name"): writes classes.txt ("N name" per line) to --lists-out
  --jobs N            source videos cut at once (default: one per core)
  --short-side N      scale the clips so their shorter side is N pixels (default 0: the source's
                      size; sides are rounded down to even numbers)
  --codec C           auto | h264 | mpeg4 (default auto: H.264 when FFmpeg has libx264)
  --crf N             quality, lower is better: x264's CRF (default 23, as `ffmpeg -c:v libx264`),
                      or MPEG-4's qscale 1..31
  --preset P          x264 preset, ultrafast .. veryslow (default medium)

A clip holds the source frames from the sub-action's start to its end (event start + the first
stage's start, event start + the last stage's end), with their timing; no audio. It appears only
complete (written to a temporary file, then renamed), so a rerun skips the clips already there and
cuts the rest: run it again after an interruption or after downloading more videos. A missing or
unusable source video, or a clip it cannot cut, is reported (file named, reason) and skipped; the
rest goes on. Progress and an ETA (remaining clip seconds at the rate so far) go to stderr, then a
summary. SIGINT/SIGTERM stop it after dropping the clips in progress.

exit status: 0 every clip in scope is prepared, 3 some were skipped (missing or broken source
videos, clips that could not be cut, unusable annotated times, list entries not in the annotation;
the summary names them), 2 invalid options or input (annotation, lists, categories, folders:
nothing is cut), 74 a clip or list could not be written, 130/143 stopped by SIGINT/SIGTERM.
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int parse_int(const std::string& flag, const std::string& v, int lo, int hi) {
  std::size_t used = 0;
  long long x = 0;
  try {
    x = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size())
    throw UsageError(fmt::format("{}: expected an integer, got \"{}\"", flag, v));
  if (x < lo || x > hi) throw UsageError(fmt::format("{}: {} is outside [{}, {}]", flag, v, lo, hi));
  return int(x);
}

io::FineGymPrepareOptions parse_finegym(int argc, char** argv, bool* help) {
  io::FineGymPrepareOptions o;
  o.jobs = int(std::max(1u, std::thread::hardware_concurrency()));
  const std::vector<std::string> flags = {"--annotation", "--videos", "--list",       "--lists-out",
                                          "--categories", "--jobs",   "--short-side", "--codec",
                                          "--crf",        "--preset"};
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      *help = true;
      return o;
    }
    if (arg.rfind("-", 0) != 0) {
      if (!o.out_dir.empty()) throw UsageError(fmt::format("unexpected argument {}", arg));
      o.out_dir = arg;
      continue;
    }
    if (std::find(flags.begin(), flags.end(), arg) == flags.end()) {
      const std::string guess = graph::closest_match(arg, flags);
      throw UsageError(
          fmt::format("unknown option {}{}", arg, guess.empty() ? "" : " (did you mean " + guess + "?)"));
    }
    if (i + 1 >= argc) throw UsageError(arg + " needs a value");
    const std::string v = argv[++i];
    if (arg == "--annotation") o.annotation = v;
    if (arg == "--videos") o.videos_dir = v;
    if (arg == "--list") o.lists.push_back(v);
    if (arg == "--lists-out") o.lists_out = v;
    if (arg == "--categories") o.categories = v;
    if (arg == "--jobs") o.jobs = parse_int(arg, v, 1, 1024);
    if (arg == "--short-side") {
      o.cut.short_side = parse_int(arg, v, 0, 16384);
      if (o.cut.short_side % 2)
        throw UsageError(fmt::format("--short-side: {} is odd (4:2:0 needs even sides)", v));
    }
    if (arg == "--crf") o.cut.encoder.crf = parse_int(arg, v, 0, 63);
    if (arg == "--preset") o.cut.encoder.preset = v;
    if (arg == "--codec") {
      const auto codec = io::kVideoCodecs.parse(v);  // the clips are .mp4 files: no VP9
      if (!codec || *codec == io::VideoCodec::kVp9)
        throw UsageError(fmt::format("--codec: expected auto, h264 or mpeg4, got \"{}\"", v));
      o.cut.encoder.codec = *codec;
    }
  }
  if (o.out_dir.empty()) throw UsageError("missing OUT_DIR");
  if (o.annotation.empty()) throw UsageError("--annotation FILE is required");
  if (o.videos_dir.empty()) throw UsageError("--videos DIR is required");
  if (!io::encoder_available(o.cut.encoder.codec))
    throw UsageError(fmt::format("no {} encoder in this FFmpeg", io::to_string(o.cut.encoder.codec)));
  return o;
}

// Progress on one rewritten line on a terminal; elsewhere (logs) a line every 10 seconds.
class Console {
 public:
  Console() : tty_(isatty(2) != 0) {}
  void log(const std::string& line) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::fprintf(stderr, "%s%s\n", tty_ && shown_ ? "\r\033[K" : "", line.c_str());
    shown_ = false;
  }
  void progress(const io::FineGymProgress& p) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    const bool last = p.clips_done + p.clips_failed == p.clips;
    if (!last && now - last_ < (tty_ ? std::chrono::milliseconds(250) : std::chrono::milliseconds(10000)))
      return;
    last_ = now;
    const std::string line = io::format_progress(p);
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
      shown_ = true;
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  }
  void end_line() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (tty_ && shown_) std::fputc('\n', stderr);
    shown_ = false;
  }

 private:
  std::mutex mutex_;
  bool tty_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

int prepare_finegym(int argc, char** argv) {
  bool help = false;
  io::FineGymPrepareOptions o = parse_finegym(argc, argv, &help);
  if (help) {
    std::fputs(kFineGymUsage, stdout);
    return kExitOk;
  }
  // SIGINT/SIGTERM: the workers stop and drop the clips in progress (only finished clips are ever
  // renamed into place); a second signal ends the process at once.
  graph::set_stop_message(
      "\nsefar prepare: stopping: dropping the clips in progress (signal again to quit at once)\n");
  graph::install_stop_handlers();
  graph::enable_graceful_stop();
  o.cut.stop = [] { return graph::stop_requested(); };
  Console console;
  io::FineGymPrepareResult result;
  try {
    result = io::prepare_finegym(
        o, [&](const std::string& line) { console.log(line); },
        [&](const io::FineGymProgress& p) { console.progress(p); });
  } catch (const io::CutOutputError& e) {
    console.end_line();
    std::fprintf(stderr, "sefar prepare finegym: cannot write %s\n", e.what());
    return kExitStorage;
  }
  console.end_line();
  std::fputs(io::format_summary(result).c_str(), stderr);
  if (result.stopped) return 128 + graph::stop_signal();
  return result.clips_skipped() ? kExitSkipped : kExitOk;
}

}  // namespace

const char* const kPrepareUsage = R"(usage: sefar prepare DATASET OUT_DIR [options]

Turns a downloaded dataset into clips named as its official split lists name them.

datasets:
  finegym   cut FineGym's sub-actions out of the source videos (sefar prepare finegym --help)

FineDiving ships its annotations as Python pickles: docs/FINEGYM.md shows how to convert them.
)";

int cmd_prepare(int argc, char** argv) {
  const std::string dataset = argc > 2 ? argv[2] : "";
  try {
    if (dataset == "--help" || dataset == "-h") {
      std::fputs(kPrepareUsage, stdout);
      return kExitOk;
    }
    if (dataset == "finegym") return prepare_finegym(argc, argv);
    if (dataset.empty()) throw UsageError("missing DATASET");
    if (dataset == "finediving")
      throw UsageError(
          "FineDiving's annotations are Python pickles: docs/FINEGYM.md shows how to convert them");
    const std::string guess = graph::closest_match(dataset, {"finegym"});
    throw UsageError(fmt::format("unknown dataset \"{}\"{}", dataset,
                                 guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess)));
  } catch (const UsageError& e) {
    std::fprintf(stderr, "sefar prepare: %s\n\n%s", e.what(),
                 dataset == "finegym" ? kFineGymUsage : kPrepareUsage);
    return kExitInvalid;
  } catch (const io::FineGymError& e) {
    std::fprintf(stderr, "sefar prepare %s: invalid input: %s\n", dataset.c_str(), e.what());
    return kExitInvalid;
  } catch (const io::SplitListError& e) {
    std::fprintf(stderr, "sefar prepare %s: invalid split list: %s\n", dataset.c_str(), e.what());
    return kExitInvalid;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "sefar prepare %s: %s\n", dataset.c_str(), e.what());
    return kExitInvalid;
  }
}

}  // namespace sefar::tools
