// Synthetic frames for the video tests: a clip's worth of RGB images painted pixel by pixel.
#pragma once

#include <cstddef>
#include <cstdint>

#include "io/video.h"

namespace sefar::testing {

// `count` frames of `width` x `height`; paint(t, x, y, px) sets the RGB bytes px[0..2] of pixel
// (x, y) of frame t.
template <class Paint>
io::Frames painted_frames(int count, int width, int height, Paint paint) {
  io::Frames f;
  f.count = count;
  f.width = width;
  f.height = height;
  f.rgb.resize(f.frame_bytes() * count);
  for (int t = 0; t < count; ++t)
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) paint(t, x, y, f.frame(t) + (std::size_t(y) * width + x) * 3);
  return f;
}

}  // namespace sefar::testing
