#include "io/views.h"

#include <stdexcept>

#include <ATen/ops/empty.h>
#include <fmt/format.h>

namespace sefar::io {

std::vector<at::Tensor> make_views(const Frames& frames, const ElementSample& positions, const CropBox& crop,
                                   bool flip, const Normalisation& norm) {
  if (crop.x < 0 || crop.y < 0 || crop.width <= 0 || crop.height <= 0 || crop.x + crop.width > frames.width ||
      crop.y + crop.height > frames.height)
    throw std::invalid_argument(fmt::format("crop {}x{}+{}+{} does not fit frames of {}x{}", crop.width, crop.height,
                                            crop.x, crop.y, frames.width, frames.height));
  // One multiply-add per value: (v / 255 - mean) / std.
  const float scale = 1.0f / (255.0f * norm.std), offset = -norm.mean / norm.std;
  const std::size_t plane = std::size_t(crop.width) * crop.height;
  std::vector<at::Tensor> views;
  views.reserve(positions.frames.size());
  for (const auto& slots : positions.frames) {
    const int t_count = int(slots.size());
    at::Tensor view = at::empty({3, t_count, crop.height, crop.width}, at::kFloat);
    float* out = view.data_ptr<float>();
    for (int t = 0; t < t_count; ++t) {
      int pos = slots[t];
      if (pos < 0 || pos >= frames.count)
        throw std::out_of_range(fmt::format("view position {} outside the {} decoded frames", pos, frames.count));
      const std::uint8_t* src = frames.frame(pos);
      for (int y = 0; y < crop.height; ++y) {
        const std::uint8_t* row = src + (std::size_t(crop.y + y) * frames.width + crop.x) * 3;
        float* r = out + (0 * t_count + t) * plane + std::size_t(y) * crop.width;
        float* g = out + (1 * t_count + t) * plane + std::size_t(y) * crop.width;
        float* b = out + (2 * t_count + t) * plane + std::size_t(y) * crop.width;
        for (int x = 0; x < crop.width; ++x) {
          const std::uint8_t* px = row + 3 * (flip ? crop.width - 1 - x : x);
          r[x] = float(px[0]) * scale + offset;
          g[x] = float(px[1]) * scale + offset;
          b[x] = float(px[2]) * scale + offset;
        }
      }
    }
    views.push_back(std::move(view));
  }
  return views;
}

}  // namespace sefar::io
