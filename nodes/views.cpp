// views: turns decoded clips into normalised float views: per draw a random crop and flip
// (training) or centre crop (eval), or N temporal x M spatial crops (test), plus the strong draw's
// channel dropout.
#include <fmt/format.h>

#include "graph/diagnostics.h"
#include "graph/node.h"
#include "io/random.h"
#include "io/temporal.h"
#include "io/views.h"
#include "nodes/builtin.h"
#include "nodes/views.h"

namespace sefar::nodes {

namespace {

enum class SpatialMode { train, eval, test };
constexpr auto kSpatialModes = util::enum_table<SpatialMode>(
    {
        {SpatialMode::train, "train", "random crop and flip per draw"},
        {SpatialMode::eval, "eval", "centre crop"},
        {SpatialMode::test, "test", "spatial_crops crops along the long side for every draw"},
    },
    "view mode");

struct ViewsOptions {
  int crop = 224;
  SpatialMode mode = SpatialMode::train;
  int spatial_crops = 3;
  double flip_probability = 0.5;
  double channel_dropout = 0.2;
  io::Normalisation norm;
};

class ViewsNode final : public graph::Node {
 public:
  explicit ViewsNode(const graph::NodeContext& ctx) : seed_(ctx.seed) {
    const auto& p = ctx.params;
    options_.crop = int(p.get_int("crop"));
    options_.mode = p.get_enum("mode", kSpatialModes);
    options_.spatial_crops = int(p.get_int("spatial_crops"));
    options_.flip_probability = p.get_float("flip");
    options_.channel_dropout = p.get_float("channel_dropout");
    options_.norm.mean = float(p.get_float("mean"));
    options_.norm.std = float(p.get_float("std"));
  }

  void process(int, const graph::Item& item, graph::Output& out) override {
    const DecodedClip& clip = *item.as<DecodedClipPtr>();
    const io::Size size{clip.frames.width, clip.frames.height};
    if (size.width < options_.crop || size.height < options_.crop)
      throw graph::ConfigError(
          fmt::format("param \"crop\": frames of {}x{} are smaller than the {} crop: raise "
                      "the decode node's short_side",
                      size.width, size.height, options_.crop));
    auto views = std::make_shared<ClipViews>();
    views->clip = clip.clip;
    const std::uint64_t pass = clip.clip.pass, index = clip.clip.index;
    for (std::size_t d = 0; d < clip.draws.size(); ++d) {
      if (options_.mode == SpatialMode::test) {
        for (int s = 0; s < options_.spatial_crops; ++s) {
          auto crop = io::test_crop(size, options_.crop, s, options_.spatial_crops);
          views->draws.push_back(io::make_views(clip.frames, clip.draws[d], crop, false, options_.norm));
        }
        continue;
      }
      io::CropBox crop;
      bool flip = false;
      if (options_.mode == SpatialMode::eval) {
        crop = io::test_crop(size, options_.crop, 1, 3);  // the centre one of three
      } else {
        // Draw 0 is the weak (or only) draw, draw 1 the strong one: independent crops and flips.
        auto draw = clip.draws.size() == 1 ? io::Draw::single : d == 0 ? io::Draw::weak : io::Draw::strong;
        io::Rng crop_rng(seed_, pass, index, io::Purpose::crop, draw);
        io::Rng flip_rng(seed_, pass, index, io::Purpose::flip, draw);
        crop = io::draw_crop(crop_rng, size, options_.crop);
        flip = io::draw_flip(flip_rng, options_.flip_probability);
      }
      views->draws.push_back(io::make_views(clip.frames, clip.draws[d], crop, flip, options_.norm));
    }
    if (options_.mode == SpatialMode::train && clip.draws.size() == 2 && options_.channel_dropout > 0) {
      io::Rng rng(seed_, pass, index, io::Purpose::channel_dropout, io::Draw::strong);
      auto scale = io::draw_channel_dropout(rng, 3, options_.channel_dropout);
      for (int c = 0; c < 3; ++c) views->channel_scale[c] = scale[c];
    }
    out.emit(0, ClipViewsPtr(std::move(views)));
  }

 private:
  ViewsOptions options_;
  std::uint64_t seed_;
};

}  // namespace

graph::NodeSpec views_spec() {
  return graph::NodeSpec("views")
      .doc(
          "Crops, flips and normalises decoded clips into float views [3, T, S, S] per view; for two "
          "draws (weak, strong) also draws the strong draw's channel dropout.")
      .input("in", decoded_message(), "decoded clips")
      .output("out", views_message(), "view tensors per draw")
      .param_int("crop", 224, "square crop size in pixels", 8, 4096)
      .param_choice("mode", SpatialMode::train, kSpatialModes, kSpatialModes.describe())
      .param_int("spatial_crops", 3, "test mode: crops per draw", 1, 16)
      .param_float("flip", 0.5, "train: probability of a horizontal flip", 0, 1)
      .param_float("channel_dropout", 0.2,
                   "train with two draws: probability each channel of the strong draw is "
                   "zeroed (kept channels scaled by 1/(1-p))",
                   0, 0.99)
      .param_float("mean", 0.45, "normalisation mean (values in [0, 1])", -10, 10)
      .param_float("std", 0.225, "normalisation standard deviation", 1e-6, 10)
      .factory([](const graph::NodeContext& ctx) { return std::make_unique<ViewsNode>(ctx); });
}

}  // namespace sefar::nodes
