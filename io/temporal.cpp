#include "io/temporal.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace sefar::io {

namespace {

void require_frames(int num_frames, const char* where) {
  if (num_frames < 1)
    throw std::invalid_argument(fmt::format("{}: clip has {} frames (need >= 1)", where, num_frames));
}

void require_shape(const ElementLayout& layout, const ElementSample& sample, const char* where) {
  bool ok = sample.frames.size() == layout.segments.size();
  for (std::size_t v = 0; ok && v < sample.frames.size(); ++v) {
    ok = sample.frames[v].size() == layout.segments[v].size();
  }
  if (!ok) throw std::invalid_argument(fmt::format("{}: draw does not match the view set", where));
}

// Builds a draw by choosing one frame per segment, in timeline order.
template <class Pick>
ElementSample sample_with(const ElementLayout& layout, int num_frames, Pick pick) {
  std::vector<int> timeline(static_cast<std::size_t>(layout.num_segments));
  for (int j = 0; j < layout.num_segments; ++j) {
    timeline[static_cast<std::size_t>(j)] = pick(segment_range(num_frames, layout.num_segments, j));
  }
  return from_timeline(layout, timeline);
}

}  // namespace

ElementLayout make_layout(const std::vector<int>& view_set) {
  if (view_set.empty()) throw std::invalid_argument("view set is empty");
  ElementLayout layout;
  layout.view_set = view_set;
  std::int64_t total = 0;
  for (int k : view_set) {
    if (k < 1)
      throw std::invalid_argument(fmt::format("view set has a view with {} segments (need >= 1)", k));
    total += k;
  }
  if (total > 1'000'000) throw std::invalid_argument("view set has too many segments");
  const int s = static_cast<int>(total);
  layout.num_segments = s;
  layout.segments.resize(view_set.size());
  layout.view_of_segment.assign(static_cast<std::size_t>(s), -1);
  layout.slot_of_segment.assign(static_cast<std::size_t>(s), -1);

  std::vector<bool> taken(static_cast<std::size_t>(s), false);
  for (std::size_t v = view_set.size(); v-- > 0;) {
    const std::int64_t k = view_set[v];
    std::vector<int>& mine = layout.segments[v];
    // Take segment j when free and j >= c * S / k (integer form of the ideal-stride test).
    for (int j = 0; j < s && static_cast<std::int64_t>(mine.size()) < k; ++j) {
      if (!taken[static_cast<std::size_t>(j)] && j * k >= static_cast<std::int64_t>(mine.size()) * s) {
        mine.push_back(j);
        taken[static_cast<std::size_t>(j)] = true;
      }
    }
    // Fallback for a walk that ends short: the lowest free segments keep the views disjoint.
    for (int j = 0; j < s && static_cast<std::int64_t>(mine.size()) < k; ++j) {
      if (!taken[static_cast<std::size_t>(j)]) {
        mine.push_back(j);
        taken[static_cast<std::size_t>(j)] = true;
      }
    }
    std::sort(mine.begin(), mine.end());
    for (std::size_t slot = 0; slot < mine.size(); ++slot) {
      layout.view_of_segment[static_cast<std::size_t>(mine[slot])] = static_cast<int>(v);
      layout.slot_of_segment[static_cast<std::size_t>(mine[slot])] = static_cast<int>(slot);
    }
  }
  return layout;
}

FrameRange segment_range(int num_frames, int num_segments, int segment) {
  require_frames(num_frames, "segment_range");
  if (num_segments < 1 || segment < 0 || segment >= num_segments) {
    throw std::invalid_argument(fmt::format("segment_range: segment {} of {}", segment, num_segments));
  }
  const std::int64_t n = num_frames;
  FrameRange r;
  r.begin = static_cast<int>(segment * n / num_segments);
  r.end = static_cast<int>((segment + 1) * n / num_segments);
  if (r.end <= r.begin) r.end = r.begin + 1;  // N < S: repeat a frame rather than fail
  return r;
}

ElementSample sample_train(const ElementLayout& layout, int num_frames, Rng& rng) {
  require_frames(num_frames, "sample_train");
  return sample_with(layout, num_frames, [&](FrameRange r) { return rng.uniform_int(r.begin, r.end - 1); });
}

ElementSample sample_eval(const ElementLayout& layout, int num_frames) {
  require_frames(num_frames, "sample_eval");
  return sample_with(layout, num_frames, [](FrameRange r) { return r.begin + (r.end - r.begin) / 2; });
}

ElementSample sample_test(const ElementLayout& layout, int num_frames, int temporal_index, int num_temporal) {
  require_frames(num_frames, "sample_test");
  if (num_temporal < 1 || temporal_index < 0 || temporal_index >= num_temporal) {
    throw std::invalid_argument(
        fmt::format("sample_test: temporal draw {} of {}", temporal_index, num_temporal));
  }
  return sample_with(layout, num_frames, [&](FrameRange r) {
    const std::int64_t len = r.end - r.begin;
    return r.begin + static_cast<int>((2 * temporal_index + 1) * len / (2 * std::int64_t{num_temporal}));
  });
}

std::vector<int> to_timeline(const ElementLayout& layout, const ElementSample& sample) {
  require_shape(layout, sample, "to_timeline");
  std::vector<int> timeline(static_cast<std::size_t>(layout.num_segments));
  for (std::size_t v = 0; v < layout.segments.size(); ++v) {
    for (std::size_t slot = 0; slot < layout.segments[v].size(); ++slot) {
      timeline[static_cast<std::size_t>(layout.segments[v][slot])] = sample.frames[v][slot];
    }
  }
  return timeline;
}

ElementSample from_timeline(const ElementLayout& layout, const std::vector<int>& timeline) {
  if (timeline.size() != static_cast<std::size_t>(layout.num_segments)) {
    throw std::invalid_argument("from_timeline: timeline length differs from the segment count");
  }
  ElementSample sample;
  sample.frames.resize(layout.segments.size());
  for (std::size_t v = 0; v < layout.segments.size(); ++v) {
    sample.frames[v].reserve(layout.segments[v].size());
    for (int seg : layout.segments[v]) sample.frames[v].push_back(timeline[static_cast<std::size_t>(seg)]);
  }
  return sample;
}

FrameUnion union_indices(const std::vector<ElementSample>& draws) {
  FrameUnion u;
  for (const auto& d : draws) {
    for (const auto& view : d.frames) u.frames.insert(u.frames.end(), view.begin(), view.end());
  }
  std::sort(u.frames.begin(), u.frames.end());
  u.frames.erase(std::unique(u.frames.begin(), u.frames.end()), u.frames.end());
  u.positions.resize(draws.size());
  for (std::size_t d = 0; d < draws.size(); ++d) {
    auto& per_view = u.positions[d];
    per_view.resize(draws[d].frames.size());
    for (std::size_t v = 0; v < draws[d].frames.size(); ++v) {
      per_view[v].reserve(draws[d].frames[v].size());
      for (int f : draws[d].frames[v]) {
        const auto it = std::lower_bound(u.frames.begin(), u.frames.end(), f);
        per_view[v].push_back(static_cast<int>(it - u.frames.begin()));
      }
    }
  }
  return u;
}

// ---------------------------------------------------------------------------------------------
// Perturbations.

ElementSample reverse_fine_views(const ElementSample& sample) {
  ElementSample out = sample;
  for (std::size_t v = 0; v + 1 < out.frames.size(); ++v)
    std::reverse(out.frames[v].begin(), out.frames[v].end());
  return out;
}

ElementSample reverse_all_views(const ElementSample& sample) {
  ElementSample out = sample;
  for (auto& view : out.frames) std::reverse(view.begin(), view.end());
  return out;
}

ElementSample shuffle_fine_views(const ElementSample& sample, Rng& rng) {
  ElementSample out = sample;
  for (std::size_t v = 0; v + 1 < out.frames.size(); ++v) rng.shuffle(out.frames[v]);
  return out;
}

ElementSample shuffle_timeline(const ElementLayout& layout, const ElementSample& sample, Rng& rng) {
  std::vector<int> timeline = to_timeline(layout, sample);
  rng.shuffle(timeline);
  return from_timeline(layout, timeline);
}

std::vector<int> warp_slots(int length, Rng& rng) {
  std::vector<int> src(static_cast<std::size_t>(std::max(length, 0)));
  std::iota(src.begin(), src.end(), 0);
  if (length < 1) return src;
  // SVFormer: one of {unchanged, T/4 anchors, T/2 anchors} with equal probability.
  const std::uint64_t choice = rng.below(3);
  if (choice == 0) return src;
  const int anchors = std::max(1, choice == 1 ? length / 4 : length / 2);

  // `anchors` distinct slots, uniformly: a partial Fisher-Yates over the slot list.
  std::vector<int> pool = src;
  for (int i = 0; i < anchors; ++i) {
    const auto j = static_cast<std::size_t>(i) + rng.below(static_cast<std::uint64_t>(length - i));
    std::swap(pool[static_cast<std::size_t>(i)], pool[j]);
  }
  std::vector<int> a(pool.begin(), pool.begin() + anchors);
  std::sort(a.begin(), a.end());

  std::size_t p = 0;
  for (; p < static_cast<std::size_t>(a.front()); ++p) src[p] = a.front();
  for (std::size_t i = 0; i + 1 < a.size(); ++i) {
    const int start = a[i];
    const int end = a[i + 1];
    // Adjacent anchors keep their own frame; otherwise a random cut splits the gap between them.
    const int cut = (start + 1 == end) ? end : rng.uniform_int(start, end);
    for (int q = start; q < end; ++q) src[p++] = (q < cut) ? start : end;
  }
  for (; p < src.size(); ++p) src[p] = a.back();
  return src;
}

std::vector<int> slow_slots(int length, Rng& rng) {
  std::vector<int> src(static_cast<std::size_t>(std::max(length, 0)));
  if (length < 1) return src;
  const int keep = (length + 1) / 2;
  const int start = rng.uniform_int(0, length - keep);
  for (int p = 0; p < length; ++p) src[static_cast<std::size_t>(p)] = start + p / 2;
  return src;
}

ElementSample remap_timeline(const ElementLayout& layout, const ElementSample& sample,
                             const std::vector<int>& source_slot) {
  const std::vector<int> timeline = to_timeline(layout, sample);
  if (source_slot.size() != timeline.size()) {
    throw std::invalid_argument("remap_timeline: slot map length differs from the segment count");
  }
  std::vector<int> out(timeline.size());
  for (std::size_t p = 0; p < out.size(); ++p) {
    const int s = source_slot[p];
    if (s < 0 || static_cast<std::size_t>(s) >= timeline.size()) {
      throw std::invalid_argument("remap_timeline: slot map points outside the timeline");
    }
    out[p] = timeline[static_cast<std::size_t>(s)];
  }
  return from_timeline(layout, out);
}

ElementSample half_window(const ElementSample& sample, int num_frames, Rng& rng) {
  require_frames(num_frames, "half_window");
  const std::int64_t n = num_frames;
  const int half = (num_frames + 1) / 2;
  const int start = rng.uniform_int(0, num_frames - half);
  ElementSample out = sample;
  for (auto& view : out.frames) {
    for (int& f : view) {
      const std::int64_t clamped = std::clamp<std::int64_t>(f, 0, n - 1);
      f = start + static_cast<int>(clamped * half / n);
    }
  }
  return out;
}

ElementSample perturb(TemporalPerturbation perturbation, const ElementLayout& layout,
                      const ElementSample& sample, int num_frames, Rng& rng) {
  require_shape(layout, sample, "perturb");
  switch (perturbation) {
    case TemporalPerturbation::none:
      return sample;
    case TemporalPerturbation::moderate:
      return reverse_fine_views(sample);
    case TemporalPerturbation::all_reverse:
      return reverse_all_views(sample);
    case TemporalPerturbation::local_shuffle:
      return shuffle_fine_views(sample, rng);
    case TemporalPerturbation::all_shuffle:
      return shuffle_timeline(layout, sample, rng);
    case TemporalPerturbation::warping:
      return remap_timeline(layout, sample, warp_slots(layout.num_segments, rng));
    case TemporalPerturbation::t_drop:
      return remap_timeline(layout, sample, slow_slots(layout.num_segments, rng));
    case TemporalPerturbation::t_half:
      return half_window(sample, num_frames, rng);
  }
  throw std::invalid_argument("perturb: unknown perturbation");
}

// ---------------------------------------------------------------------------------------------
// Spatial parameters.

Size resized_size(Size source, int short_side) {
  if (source.width < 1 || source.height < 1 || short_side < 1) {
    throw std::invalid_argument(
        fmt::format("resized_size: {}x{} to short side {}", source.width, source.height, short_side));
  }
  const std::int64_t s = short_side;
  if (source.width < source.height) {
    return {short_side, static_cast<int>(source.height * s / source.width)};
  }
  return {static_cast<int>(source.width * s / source.height), short_side};
}

int draw_short_side(Rng& rng, int min_short_side, int max_short_side) {
  if (min_short_side < 1 || min_short_side > max_short_side) {
    throw std::invalid_argument(
        fmt::format("short-side range [{}, {}] is invalid", min_short_side, max_short_side));
  }
  return rng.uniform_int(min_short_side, max_short_side);
}

CropBox draw_crop(Rng& rng, Size resized, int crop_size) {
  if (crop_size < 1 || crop_size > resized.width || crop_size > resized.height) {
    throw std::invalid_argument(
        fmt::format("crop {} does not fit a {}x{} frame", crop_size, resized.width, resized.height));
  }
  CropBox box;
  box.y = rng.uniform_int(0, resized.height - crop_size);
  box.x = rng.uniform_int(0, resized.width - crop_size);
  box.width = crop_size;
  box.height = crop_size;
  return box;
}

bool draw_flip(Rng& rng, double probability) {
  return rng.bernoulli(probability);
}

std::vector<float> draw_channel_dropout(Rng& rng, int channels, double p) {
  if (channels < 0 || !(p >= 0.0 && p <= 1.0)) {
    throw std::invalid_argument(fmt::format("channel dropout: {} channels, p = {}", channels, p));
  }
  // p = 1 drops everything; the scale 1/(1-p) would be infinite, and is never used.
  const float keep_scale = p < 1.0 ? static_cast<float>(1.0 / (1.0 - p)) : 0.0f;
  std::vector<float> scale(static_cast<std::size_t>(channels));
  for (float& s : scale) s = rng.bernoulli(p) ? 0.0f : keep_scale;
  return scale;
}

SpatialParams draw_spatial(const SpatialConfig& config, Size source, StreamKey key) {
  SpatialParams params;
  key.purpose = Purpose::scale;
  Rng scale_rng(key);
  params.short_side = draw_short_side(scale_rng, config.min_short_side, config.max_short_side);
  params.resized = resized_size(source, params.short_side);
  key.purpose = Purpose::crop;
  Rng crop_rng(key);
  params.crop = draw_crop(crop_rng, params.resized, config.crop_size);
  key.purpose = Purpose::flip;
  Rng flip_rng(key);
  params.flip = draw_flip(flip_rng, config.flip_probability);
  return params;
}

CropBox test_crop(Size resized, int crop_size, int spatial_index, int num_spatial) {
  if (num_spatial < 1 || spatial_index < 0 || spatial_index >= num_spatial) {
    throw std::invalid_argument(fmt::format("test_crop: spatial crop {} of {}", spatial_index, num_spatial));
  }
  if (crop_size < 1 || crop_size > resized.width || crop_size > resized.height) {
    throw std::invalid_argument(
        fmt::format("crop {} does not fit a {}x{} frame", crop_size, resized.width, resized.height));
  }
  const bool tall = resized.height > resized.width;
  const std::int64_t slack_long = (tall ? resized.height : resized.width) - crop_size;
  const int slack_short = (tall ? resized.width : resized.height) - crop_size;
  const int centre_short = (slack_short + 1) / 2;
  std::int64_t along;
  if (num_spatial == 1) {
    along = (slack_long + 1) / 2;
  } else {
    const std::int64_t den = 2 * std::int64_t{num_spatial - 1};
    along = (2 * spatial_index * slack_long + (num_spatial - 1)) / den;
  }
  CropBox box;
  box.width = crop_size;
  box.height = crop_size;
  box.x = tall ? centre_short : static_cast<int>(along);
  box.y = tall ? static_cast<int>(along) : centre_short;
  return box;
}

std::vector<TestView> test_views(const ElementLayout& layout, int num_frames, Size resized, int crop_size,
                                 int num_temporal, int num_spatial) {
  std::vector<TestView> views;
  views.reserve(static_cast<std::size_t>(std::max(num_temporal, 0)) *
                static_cast<std::size_t>(std::max(num_spatial, 0)));
  for (int t = 0; t < num_temporal; ++t) {
    const ElementSample sample = sample_test(layout, num_frames, t, num_temporal);
    for (int c = 0; c < num_spatial; ++c) {
      views.push_back(TestView{t, c, sample, test_crop(resized, crop_size, c, num_spatial)});
    }
  }
  if (views.empty())
    throw std::invalid_argument("test_views: need at least one temporal and one spatial view");
  return views;
}

}  // namespace sefar::io
