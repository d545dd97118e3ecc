// Cutting time ranges of one long source video into short clips, re-encoded (io/video.h's encoder).
//
// The ranges are sorted and grouped: ranges closer than `merge_gap` seconds are cut in one forward
// pass from one seek, each source frame decoded once and written to every clip whose range holds it.
// A clip holds the source frames whose presentation time t (seconds from the start of the file, as
// the ffmpeg CLI's -ss counts) lies in [start, end), with their timing kept (90 kHz timestamps from
// the first frame). Each clip appears at its path only when complete (the encoder writes a temporary
// file and renames it), so an interrupted cut leaves no half-written clip.
#pragma once

#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "io/video.h"

namespace sefar::io {

struct CutRange {
  double start = 0, end = 0;  // seconds in the source video
  std::string path;           // output clip
};

struct CutOptions {
  // Output size: 0 keeps the source's display size, else the shorter side becomes short_side (aspect
  // kept). Either way both sides are rounded down to even numbers (4:2:0 encoding).
  int short_side = 0;
  EncoderOptions encoder;  // codec, crf, preset (timescale and threads are set by the cutter)
  int decoder_threads = 1;
  double merge_gap = 3.0;  // seconds: ranges closer than this share one seek and forward pass
  // Polled between frames: when it returns true the cut stops, clips in progress are dropped (their
  // temporary files removed) and the remaining ranges are left untried.
  std::function<bool()> stop;
};

struct CutOutcome {
  bool tried = false;  // false: never reached (stopped)
  bool ok = false;     // the clip was written
  int frames = 0;      // frames written
  std::string error;   // why not, when tried and not ok
};

// A clip that could not be written for a reason of the output side (cannot create, disk full,
// rename failed): the caller stops, as every other clip would fail the same way.
class CutOutputError : public std::runtime_error {
 public:
  explicit CutOutputError(const VideoError& e) : std::runtime_error(e.what()), path_(e.path()) {}
  CutOutputError(std::string path, const std::string& reason)
      : std::runtime_error(path + ": " + reason), path_(std::move(path)) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Cuts `ranges` out of `source`. Returns one outcome per range (same order). Throws VideoError when
// the source cannot be used at all (missing, not a video, no video stream, no decoder) and
// CutOutputError as above. A clip with no frames in its range, or cut short because the source ends
// more than a frame and a half before its end (a truncated download), is not written: its outcome
// says why. `on_done(i, outcome)` is called as each range ends.
std::vector<CutOutcome> cut_video(const std::string& source, const std::vector<CutRange>& ranges,
                                  const CutOptions& options,
                                  const std::function<void(std::size_t, const CutOutcome&)>& on_done = {});

}  // namespace sefar::io
