// A synthetic fine-grained action dataset. Each clip shows one asymmetric "gymnast" (a body with a
// head) performing a routine of sub-movements: turns clockwise or anticlockwise, one or two (or one
// and a half) turns, and jumps, in a class-specific order. Classes differ only in temporal detail
// (direction, number of turns, order of sub-movements), the way FineGym's elements do; colours,
// background texture, position, size, starting orientation, speed, timing, noise and clip length
// vary per clip so that no single frame reveals the class.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/video.h"

namespace sefar::io {

struct SynthOptions {
  std::string out_dir;
  int num_classes = 8;          // 2..12 (see synth_class_names())
  // The routines used are class_defs[first_class, first_class + num_classes), labelled from 0: a
  // dataset of other classes than the default's (e.g. first_class 8, num_classes 4) for pretraining
  // on a different task.
  int first_class = 0;
  int train_per_class = 60;     // labeled + unlabeled pool per class
  int val_per_class = 20;
  double labeled_fraction = 0.1;  // of the training pool, per class (at least one clip per class)
  int width = 128, height = 96;   // even
  int min_frames = 40, max_frames = 75;
  double fps = 30;
  double noise = 6.0;             // std-dev of per-pixel noise, in 8-bit levels
  // Strength of the appearance nuisances (spread of background and body colours, contrast of the
  // background texture): 1 is the widest; the default keeps every nuisance but lets the tiny model
  // learn the routines in a few hundred labeled steps (measured: docs/SYNTH_DIFFICULTY.md).
  double nuisance = 0.3;
  double figure_scale = 1.3;  // figure size relative to the frame's short side (1: body 0.3 of it)
  std::uint64_t seed = 0;
  VideoCodec codec = VideoCodec::kAuto;
  int threads = 1;                // clips rendered and encoded in parallel
};

struct SynthClip {
  std::string path;  // relative to out_dir
  int label;
  int frames;
};

struct SynthResult {
  std::vector<SynthClip> train, unlabeled, val;
};

// Class names in label order, e.g. "turn_cw_1", "jump_then_turn_ccw_1"; label 0 is routine
// `first_class`. Throws std::invalid_argument unless 2 <= num_classes and the range fits the 12.
std::vector<std::string> synth_class_names(int num_classes, int first_class = 0);

// Renders the frames of clip `index` (0-based, over the whole dataset) of class `label` (routine
// options.first_class + label).
Frames render_synth_clip(const SynthOptions& options, int label, std::uint64_t index);

// Writes <out_dir>/videos/*.mp4, train.csv, unlabel.csv, val.csv (official format: "path label"
// relative to out_dir) and classes.txt. Deterministic from options.seed. `progress(done, total)`
// is called as clips finish.
SynthResult generate_synth_dataset(const SynthOptions& options,
                                   const std::function<void(int, int)>& progress = {});

}  // namespace sefar::io
