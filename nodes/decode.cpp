// decode: opens a clip, draws its dual-level temporal elements (one draw, or weak and strong), and
// decodes the union of the frames they need in one forward pass, resized to a short side.
#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join (in fmt/format.h only before fmt 11)

#include "graph/diagnostics.h"
#include "graph/node.h"
#include "io/random.h"
#include "io/temporal.h"
#include "io/video.h"
#include "nodes/builtin.h"
#include "nodes/messages.h"
#include "util/errors.h"

namespace sefar::nodes {

namespace {

enum class DrawMode { train, weak_strong, eval, test };
constexpr auto kDrawModes = util::enum_table<DrawMode>(
    {
        {DrawMode::train, "train", "one random draw"},
        {DrawMode::weak_strong, "weak_strong", "two independent random draws (SeFAR's unlabeled clips)"},
        {DrawMode::eval, "eval", "segment centres"},
        {DrawMode::test, "test", "test_clips evenly offset draws (multi-view testing)"},
    },
    "draw mode");

struct DecodeOptions {
  std::vector<int> views;
  DrawMode mode = DrawMode::train;
  int min_short_side = 256, max_short_side = 320;
  int threads = 1;
  int test_clips = 5;
  std::int64_t max_pixels = io::DecoderOptions().max_pixels;
  io::TemporalPerturbation perturbation = io::TemporalPerturbation::moderate;
};

class DecodeNode final : public graph::Node {
 public:
  explicit DecodeNode(const graph::NodeContext& ctx) : seed_(ctx.seed) {
    const auto& p = ctx.params;
    for (auto k : p.get_int_list("views")) options_.views.push_back(int(k));
    options_.mode = p.get_enum("draws", kDrawModes);
    options_.test_clips = int(p.get_int("test_clips"));
    auto side = p.get_int_list("short_side");
    if (side.size() != 2 || side[0] > side[1])
      throw util::ParamError("short_side", fmt::format("expected [min, max] with min <= max, got [{}]",
                                              fmt::join(side, ", ")));
    options_.min_short_side = int(side[0]);
    options_.max_short_side = int(side[1]);
    options_.threads = int(p.get_int("threads"));
    options_.max_pixels = p.get_int("max_pixels");
    options_.perturbation = p.get_enum("perturbation", io::kTemporalPerturbations);
    layout_ = io::make_layout(options_.views);
  }

  void process(int, const graph::Item& item, graph::Output& out) override {
    const ClipRef& clip = *item.as<ClipRefPtr>();
    auto decoded = std::make_shared<DecodedClip>();
    decoded->clip = clip;
    try {
      io::DecoderOptions dopt;
      dopt.threads = options_.threads;
      dopt.max_pixels = options_.max_pixels;
      io::VideoDecoder decoder(dopt);
      decoder.open(clip.path);
      const int n = decoder.frame_count();
      decoded->num_frames = n;
      std::vector<io::ElementSample> draws;
      if (options_.mode == DrawMode::eval) {
        draws.push_back(io::sample_eval(layout_, n));
      } else if (options_.mode == DrawMode::test) {
        for (int t = 0; t < options_.test_clips; ++t) draws.push_back(io::sample_test(layout_, n, t, options_.test_clips));
      } else if (options_.mode == DrawMode::train) {
        io::Rng rng(seed_, clip.pass, clip.index, io::Purpose::frames, io::Draw::single);
        draws.push_back(io::sample_train(layout_, n, rng));
      } else {
        io::Rng weak(seed_, clip.pass, clip.index, io::Purpose::frames, io::Draw::weak);
        io::Rng strong(seed_, clip.pass, clip.index, io::Purpose::frames, io::Draw::strong);
        draws.push_back(io::sample_train(layout_, n, weak));
        // Temporal perturbations act on frame indices (some draw new frames: t_half, t_drop,
        // warping), so they happen before decoding and the union covers them.
        io::Rng perturb(seed_, clip.pass, clip.index, io::Purpose::perturb, io::Draw::strong);
        draws.push_back(io::perturb(options_.perturbation, layout_, io::sample_train(layout_, n, strong), n, perturb));
      }
      // One short side per clip, shared by its draws (they are decoded together); crops and flips
      // stay independent per draw.
      int side = options_.min_short_side;
      if ((options_.mode == DrawMode::train || options_.mode == DrawMode::weak_strong) && options_.max_short_side > options_.min_short_side) {
        io::Rng rng(seed_, clip.pass, clip.index, io::Purpose::scale);
        side = rng.uniform_int(options_.min_short_side, options_.max_short_side);
      }
      auto u = io::union_indices(draws);
      io::ResizeSpec resize;
      resize.short_side = side;
      decoded->frames = decoder.decode(u.frames, resize);
      decoded->frame_indices = draws;
      for (const auto& draw_positions : u.positions) decoded->draws.push_back(io::ElementSample{draw_positions});
    } catch (const io::VideoError& e) {
      // The item's label names the clip already (split_source labels items with their path).
      const bool labelled = item.label && *item.label == clip.path;
      throw graph::InputError(labelled ? e.reason() : e.what(), io::to_string(e.kind()));
    }
    out.emit(0, DecodedClipPtr(std::move(decoded)));
  }

 private:
  DecodeOptions options_;
  std::uint64_t seed_;
  io::ElementLayout layout_;
};

}  // namespace

graph::NodeSpec decode_spec() {
  return graph::NodeSpec("decode")
      .doc(
          "Draws a clip's dual-level temporal elements and decodes the frames they need in one pass, "
          "resized to a short side. Clips that cannot be decoded are reported and skipped.")
      .input("in", clip_message(), "clips")
      .output("out", decoded_message(), "decoded frames with the draws' positions")
      .param_int_list("views", std::vector<std::int64_t>{2, 2, 4},
                      "frames per view; the last view is the coarse (context) element", 1, 256, 1)
      .param_choice("draws", DrawMode::train, kDrawModes, kDrawModes.describe())
      .param_int("test_clips", 5, "test mode: temporal draws per clip", 1, 64)
      .param_int_list("short_side", std::vector<std::int64_t>{256, 320},
                      "[min, max] short side after resizing; random in range when training, min in eval", 8,
                      4096, 2)
      .param_choice(
          "perturbation", io::TemporalPerturbation::moderate, io::kTemporalPerturbations,
          "temporal perturbation of the strong draw (weak_strong only); moderate reverses every fine "
          "view and keeps the coarse one")
      .param_int("threads", 1, "FFmpeg decoder threads per clip (frame threading delays output)", 1, 64)
      .may_change_on_resume()
      .param_int(
          "max_pixels", io::DecoderOptions().max_pixels,
          "clips whose frames have more pixels (width x height) are skipped as too large; smaller ones "
          "of any size are decoded and scaled (default: 8192x4320, DCI 8K)",
          1, double(std::int64_t(16384) * 16384))
      .factory([](const graph::NodeContext& ctx) { return std::make_unique<DecodeNode>(ctx); });
}

}  // namespace sefar::nodes
