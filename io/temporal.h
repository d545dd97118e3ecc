// Dual-level temporal elements: which frames of a clip each view sees (DESIGN §2), the temporal
// perturbation family applied to the strong draw, multi-view test sampling, and the spatial
// parameters of a view (scale, crop, flip, channel dropout). Everything here works on frame
// indices and small structs: no pixels, no decoder, so it is cheap to test and to call per clip.
//
// Terms. A view set V = [k_1..k_m] splits a clip of N frames into S = sum(k_i) segments; view i
// takes k_i of them, one frame per segment. The last view is the coarse-level element, the others
// are fine-level elements. The "timeline" of a draw is its S frames in segment order (segment 0
// first); every view's frames are a subsequence of the timeline.
#pragma once

#include <array>
#include <string_view>
#include <vector>

#include "io/random.h"
#include "util/enum_table.h"

namespace sefar::io {

// ---------------------------------------------------------------------------------------------
// Segments and their assignment to views.

// Which segments each view of a view set takes.
//
// Rule (reproduces the official SeFAR sampler, KyleHuang9/SeFAR timesformer/datasets/
// multi_decoder.py): views are served from the last (coarse) to the first. A view with k segments
// has the ideal stride S/k; it walks the segments in order and takes segment j when j is still
// free and j >= c*S/k, where c is how many it holds so far. For [2,2,4]: the coarse view takes
// 0,2,4,6; the second 2-frame view 1,5; the first 2-frame view 3,7. [4,4,8] -> {3,7,11,15},
// {1,5,9,13}, {0,2,...,14}; [2,4] -> {1,4}, {0,2,3,5}; [1,1,2] -> {3}, {1}, {0,2}.
// Should the walk end short (no view set of up to 4 views of 1..8 segments does), the view takes
// the lowest free segments; the official code draws random ones there, which can overlap.
struct ElementLayout {
  std::vector<int> view_set;               // k_i per view
  int num_segments = 0;                    // S
  std::vector<std::vector<int>> segments;  // per view, its segments in ascending order
  std::vector<int> view_of_segment;        // segment -> view
  std::vector<int> slot_of_segment;        // segment -> position within its view
};

// Throws std::invalid_argument for an empty view set or a k_i < 1.
ElementLayout make_layout(const std::vector<int>& view_set);

// Frames [begin, end) of a segment. Boundaries: segment j covers [floor(j*N/S), floor((j+1)*N/S)).
// When N < S some of these are empty; such a segment is widened to the single frame floor(j*N/S),
// so short clips repeat frames instead of failing. Requires N >= 1 and 0 <= j < S.
struct FrameRange {
  int begin = 0;
  int end = 0;
};
FrameRange segment_range(int num_frames, int num_segments, int segment);

// ---------------------------------------------------------------------------------------------
// Drawing frames.

// One draw of a clip: per view, its frame indices in temporal (slot) order.
struct ElementSample {
  std::vector<std::vector<int>> frames;
  bool operator==(const ElementSample& other) const { return frames == other.frames; }
  bool operator!=(const ElementSample& other) const { return !(*this == other); }
};

// Training: one frame uniformly at random inside each segment. Segments are drawn in timeline
// order, so segment j always uses the j-th number of the stream whatever the view set.
ElementSample sample_train(const ElementLayout& layout, int num_frames, Rng& rng);
// Evaluation: the centre frame of each segment, begin + (end - begin) / 2.
ElementSample sample_eval(const ElementLayout& layout, int num_frames);
// Test draw t of T: the frame at offset (t + 0.5) / T of each segment,
// begin + floor((2t + 1) * len / (2T)). T = 1 gives the eval centres.
ElementSample sample_test(const ElementLayout& layout, int num_frames, int temporal_index, int num_temporal);

// The timeline of a draw (S frames, segment order) and back.
std::vector<int> to_timeline(const ElementLayout& layout, const ElementSample& sample);
ElementSample from_timeline(const ElementLayout& layout, const std::vector<int>& timeline);

// Several draws of one clip decoded in one pass: the sorted unique union of their frames and,
// for each draw, view and slot, the position of that frame in the union.
struct FrameUnion {
  std::vector<int> frames;
  std::vector<std::vector<std::vector<int>>> positions;  // [draw][view][slot] -> index in frames
};
FrameUnion union_indices(const std::vector<ElementSample>& draws);

// ---------------------------------------------------------------------------------------------
// Temporal perturbations of a draw (Table 4 of the SeFAR paper). Pure functions of the draw,
// the layout, the clip length and a random stream; `none`, `moderate` and `all_reverse` draw no
// numbers. The view node applies one to the strong draw before decoding, so the decoded union
// must be formed after perturbing (t_half moves frames to indices the unperturbed draw lacks).
//
//   none          identity (spatial augmentation only).
//   moderate      reverse every fine-level view; the coarse (last) view intact. The default.
//   all_reverse   reverse every view, the coarse one included.
//   local_shuffle shuffle the frames inside each fine-level view; the coarse view intact.
//   all_shuffle   one random permutation of the whole timeline: frames move across views too.
//   warping       SVFormer's temporal warping (TWAug) on the timeline: with probability 1/3 each,
//                 nothing, or keep max(1, S/4) or max(1, S/2) random anchor slots; every slot
//                 takes the frame of a neighbouring anchor (before the first anchor: the first;
//                 after the last: the last; between two anchors a random cut point decides).
//                 For S = 8 this is SVFormer's 2-or-4-anchor rule on its 8 frames.
//   t_drop        slow motion x2 (the paper's "Slow (T-Drop)"): keep ceil(S/2) consecutive
//                 timeline frames from a random start and show each twice; half the frames are
//                 dropped, the rest repeated, the timeline length kept.
//   t_half        only half of the clip's span: a random window of ceil(N/2) frames; each frame
//                 f maps to w0 + floor(f * H / N), so the segment structure shrinks into it.
enum class TemporalPerturbation {
  none,
  moderate,
  all_reverse,
  local_shuffle,
  all_shuffle,
  warping,
  t_drop,
  t_half,
};

inline constexpr auto kTemporalPerturbations = util::enum_table<TemporalPerturbation>(
    {
        {TemporalPerturbation::none, "none"},
        {TemporalPerturbation::moderate, "moderate"},
        {TemporalPerturbation::all_reverse, "all_reverse"},
        {TemporalPerturbation::local_shuffle, "local_shuffle"},
        {TemporalPerturbation::all_shuffle, "all_shuffle"},
        {TemporalPerturbation::warping, "warping"},
        {TemporalPerturbation::t_drop, "t_drop"},
        {TemporalPerturbation::t_half, "t_half"},
    },
    "temporal perturbation");
inline constexpr auto kAllPerturbations = kTemporalPerturbations.values();

inline std::string_view perturbation_name(TemporalPerturbation perturbation) {
  return kTemporalPerturbations.name(perturbation);
}
// Throws std::invalid_argument naming the valid choices.
inline TemporalPerturbation parse_perturbation(std::string_view name) {
  return kTemporalPerturbations.parse_or_throw(name);
}

ElementSample perturb(TemporalPerturbation perturbation, const ElementLayout& layout,
                      const ElementSample& sample, int num_frames, Rng& rng);

// The pieces, for callers that combine them.
ElementSample reverse_fine_views(const ElementSample& sample);
ElementSample reverse_all_views(const ElementSample& sample);
ElementSample shuffle_fine_views(const ElementSample& sample, Rng& rng);
ElementSample shuffle_timeline(const ElementLayout& layout, const ElementSample& sample, Rng& rng);
// Slot -> source slot maps on a timeline of `length` slots.
std::vector<int> warp_slots(int length, Rng& rng);
std::vector<int> slow_slots(int length, Rng& rng);
ElementSample remap_timeline(const ElementLayout& layout, const ElementSample& sample,
                             const std::vector<int>& source_slot);
ElementSample half_window(const ElementSample& sample, int num_frames, Rng& rng);

// ---------------------------------------------------------------------------------------------
// Spatial parameters of a view (no pixels: the resize and crop happen where the frames are).

struct Size {
  int width = 0;
  int height = 0;
  bool operator==(const Size& o) const { return width == o.width && height == o.height; }
};

struct CropBox {
  int x = 0;
  int y = 0;
  int width = 0;
  int height = 0;
  bool operator==(const CropBox& o) const {
    return x == o.x && y == o.y && width == o.width && height == o.height;
  }
};

// Size after scaling the short side to `short_side`, keeping the aspect ratio; the long side is
// floor(long * short_side / short), as in the TimeSformer/SlowFast short-side jitter.
Size resized_size(Size source, int short_side);

struct SpatialConfig {
  int min_short_side = 256;  // train: short side uniform in [min, max]
  int max_short_side = 320;
  int crop_size = 224;
  double flip_probability = 0.5;
};

struct SpatialParams {
  int short_side = 0;
  Size resized;
  CropBox crop;  // in resized coordinates
  bool flip = false;
};

int draw_short_side(Rng& rng, int min_short_side, int max_short_side);
// Uniform crop offsets; throws std::invalid_argument when the crop does not fit.
CropBox draw_crop(Rng& rng, Size resized, int crop_size);
bool draw_flip(Rng& rng, double probability = 0.5);
// Per channel: 0 with probability p, else 1 / (1 - p) (inverted dropout keeps the expectation).
std::vector<float> draw_channel_dropout(Rng& rng, int channels = 3, double p = 0.2);

// Scale, crop and flip of one training view, each from its own stream derived from `key`
// (key.purpose is replaced by scale, crop and flip).
SpatialParams draw_spatial(const SpatialConfig& config, Size source, StreamKey key);

// ---------------------------------------------------------------------------------------------
// Multi-view testing: T temporal draws x C spatial crops.

// Crop c of C along the long side (left/centre/right, or top/centre/bottom when the frame is
// taller than wide), centred on the short side. Offsets are round-half-up of c*(L-crop)/(C-1);
// C = 1 is the centre crop. For C = 3 this is the TimeSformer/SlowFast uniform_crop.
CropBox test_crop(Size resized, int crop_size, int spatial_index, int num_spatial);

struct TestView {
  int temporal_index = 0;
  int spatial_index = 0;
  ElementSample sample;
  CropBox crop;
};

// All T x C test views of a clip, temporal-major (t = 0 with every crop first).
std::vector<TestView> test_views(const ElementLayout& layout, int num_frames, Size resized, int crop_size,
                                 int num_temporal, int num_spatial = 3);

}  // namespace sefar::io
