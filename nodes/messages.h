// Message types carried between the video and training nodes. The graph layer moves them as
// std::any; ports declare them by name so pipelines are checked before they run.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graph/schema.h"
#include "io/temporal.h"
#include "io/video.h"

namespace sefar::nodes {

// One entry of a split list, as a source emits it.
struct ClipRef {
  std::string path;
  int label = -1;           // -1 for unlabeled clips (the list's label column is ignored)
  std::uint64_t index = 0;  // line position in its list
  std::uint64_t epoch = 0;  // training epoch the clip belongs to
  std::uint64_t pass = 0;   // pass over the list: with the index, seeds every random draw of the clip
  std::uint64_t position = 0;  // place in its source's stream (0, 1, ... over every epoch): where a
                               // resumed run starts that source again
  int list_label = -1;  // the list's label column, kept for diagnostics (pseudo-label accuracy) only
};
using ClipRefPtr = std::shared_ptr<const ClipRef>;
inline graph::MessageType clip_message() { return graph::message<ClipRefPtr>("clip"); }

// A clip decoded once for all its draws: `frames` holds the sorted union of the frames every draw
// needs; each draw lists, per view, positions into `frames`.
struct DecodedClip {
  ClipRef clip;
  io::Frames frames;
  int num_frames = 0;                    // frames in the whole clip
  std::vector<io::ElementSample> draws;  // positions into frames, per draw / view / slot
  std::vector<io::ElementSample> frame_indices;  // the same draws as clip frame indices
};
using DecodedClipPtr = std::shared_ptr<const DecodedClip>;
inline graph::MessageType decoded_message() { return graph::message<DecodedClipPtr>("decoded_clip"); }

}  // namespace sefar::nodes
