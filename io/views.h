// Spatial side of the views: crop, horizontal flip and normalisation of decoded frames into the
// float tensors the model reads, one [3, T_i, S, S] tensor per view.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>

#include "io/temporal.h"
#include "io/video.h"

namespace sefar::io {

struct Normalisation {
  float mean = 0.45f;  // per channel, on [0, 1] values (official)
  float std = 0.225f;
};

// `positions`: per view, per slot, an index into `frames`. `crop` is in frame coordinates and must
// lie inside the frames.
std::vector<at::Tensor> make_views(const Frames& frames, const ElementSample& positions, const CropBox& crop,
                                   bool flip, const Normalisation& norm = {});

}  // namespace sefar::io
