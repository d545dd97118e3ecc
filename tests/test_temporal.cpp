// Dual-level temporal elements, perturbations, test sampling, spatial draws and the deterministic
// random streams behind them. Expected values are hand-computed in the comments.
#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "io/random.h"
#include "io/temporal.h"

using namespace sefar::io;
using Views = std::vector<std::vector<int>>;

namespace {

std::vector<int> sorted(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<int> all_frames(const ElementSample& s) {
  std::vector<int> out;
  for (const auto& v : s.frames) out.insert(out.end(), v.begin(), v.end());
  return out;
}

// N = 75, S = 8: boundaries floor(j*75/8) = 0 9 18 28 37 46 56 65 75.
const std::vector<int> kBounds75 = {0, 9, 18, 28, 37, 46, 56, 65, 75};
// Centres begin + len/2 with lengths 9 9 10 9 9 10 9 10.
const std::vector<int> kCentres75 = {4, 13, 23, 32, 41, 51, 60, 70};

}  // namespace

TEST_CASE("segment assignment of [2,2,4] matches the official sampler") {
  const ElementLayout l = make_layout({2, 2, 4});
  CHECK(l.num_segments == 8);
  CHECK(l.segments == Views{{3, 7}, {1, 5}, {0, 2, 4, 6}});
  CHECK(l.view_of_segment == std::vector<int>{2, 1, 2, 0, 2, 1, 2, 0});
  CHECK(l.slot_of_segment == std::vector<int>{0, 0, 1, 0, 2, 1, 3, 1});
}

TEST_CASE("segment assignment of other view sets") {
  CHECK(make_layout({4, 4, 8}).segments == Views{{3, 7, 11, 15}, {1, 5, 9, 13}, {0, 2, 4, 6, 8, 10, 12, 14}});
  CHECK(make_layout({2, 4}).segments == Views{{1, 4}, {0, 2, 3, 5}});
  CHECK(make_layout({8}).segments == Views{{0, 1, 2, 3, 4, 5, 6, 7}});
  CHECK(make_layout({1, 1, 2}).segments == Views{{3}, {1}, {0, 2}});
  CHECK(make_layout({3, 3, 6}).segments == Views{{3, 7, 11}, {1, 5, 9}, {0, 2, 4, 6, 8, 10}});
  CHECK(make_layout({1, 2, 3}).segments == Views{{5}, {1, 3}, {0, 2, 4}});
  CHECK(make_layout({2, 2, 2, 2}).segments == Views{{3, 7}, {2, 6}, {1, 5}, {0, 4}});
  CHECK_THROWS_AS(make_layout({}), std::invalid_argument);
  CHECK_THROWS_AS(make_layout({2, 0, 4}), std::invalid_argument);
}

TEST_CASE("every view set of up to 4 views of 1..8 segments tiles the clip") {
  std::vector<int> vs;
  int checked = 0;
  auto check = [&](const std::vector<int>& view_set) {
    const ElementLayout l = make_layout(view_set);
    std::vector<int> seen(static_cast<std::size_t>(l.num_segments), 0);
    for (std::size_t v = 0; v < view_set.size(); ++v) {
      REQUIRE(l.segments[v].size() == static_cast<std::size_t>(view_set[v]));
      REQUIRE(std::is_sorted(l.segments[v].begin(), l.segments[v].end()));
      for (int s : l.segments[v]) ++seen[static_cast<std::size_t>(s)];
    }
    REQUIRE(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
    ++checked;
  };
  for (int a = 1; a <= 8; ++a) {
    check({a});
    for (int b = 1; b <= 8; ++b) {
      check({a, b});
      for (int c = 1; c <= 8; ++c) {
        check({a, b, c});
        for (int d = 1; d <= 8; ++d) check({a, b, c, d});
      }
    }
  }
  CHECK(checked == 8 + 64 + 512 + 4096);
}

TEST_CASE("segment boundaries") {
  for (int j = 0; j < 8; ++j) {
    const FrameRange r = segment_range(75, 8, j);
    CHECK(r.begin == kBounds75[static_cast<std::size_t>(j)]);
    CHECK(r.end == kBounds75[static_cast<std::size_t>(j) + 1]);
  }
  // N = 16, S = 8: two frames each.
  CHECK(segment_range(16, 8, 3).begin == 6);
  CHECK(segment_range(16, 8, 3).end == 8);
  // N = 3 < S = 8: floor(j*3/8) = 0 0 0 1 1 1 2 2, each widened to one frame.
  const std::vector<int> begins = {0, 0, 0, 1, 1, 1, 2, 2};
  for (int j = 0; j < 8; ++j) {
    const FrameRange r = segment_range(3, 8, j);
    CHECK(r.begin == begins[static_cast<std::size_t>(j)]);
    CHECK(r.end == r.begin + 1);
  }
  CHECK_THROWS_AS(segment_range(0, 8, 0), std::invalid_argument);
  CHECK_THROWS_AS(segment_range(10, 8, 8), std::invalid_argument);
}

TEST_CASE("evaluation picks the segment centres") {
  const ElementLayout l = make_layout({2, 2, 4});
  const ElementSample s = sample_eval(l, 75);
  CHECK(to_timeline(l, s) == kCentres75);
  CHECK(s.frames == Views{{32, 70}, {13, 51}, {4, 23, 41, 60}});
  // One segment of 10 frames [0, 10): centre 5.
  CHECK(sample_eval(make_layout({1}), 10).frames == Views{{5}});
}

TEST_CASE("training picks lie inside their segments and cover them") {
  const ElementLayout l = make_layout({2, 2, 4});
  std::vector<std::set<int>> hits(8);
  for (std::uint64_t clip = 0; clip < 400; ++clip) {
    Rng rng(7, 0, clip, Purpose::frames);
    const std::vector<int> t = to_timeline(l, sample_train(l, 75, rng));
    for (int j = 0; j < 8; ++j) {
      const int f = t[static_cast<std::size_t>(j)];
      REQUIRE(f >= kBounds75[static_cast<std::size_t>(j)]);
      REQUIRE(f < kBounds75[static_cast<std::size_t>(j) + 1]);
      hits[static_cast<std::size_t>(j)].insert(f);
    }
  }
  for (int j = 0; j < 8; ++j) {
    CHECK(hits[static_cast<std::size_t>(j)].size() ==
          static_cast<std::size_t>(kBounds75[static_cast<std::size_t>(j) + 1] -
                                   kBounds75[static_cast<std::size_t>(j)]));
  }
}

TEST_CASE("short clips repeat frames instead of failing") {
  const ElementLayout l = make_layout({2, 2, 4});
  Rng rng(1, 0, 0, Purpose::frames);
  CHECK(sample_train(l, 1, rng).frames == Views{{0, 0}, {0, 0}, {0, 0, 0, 0}});
  CHECK(sample_eval(l, 1).frames == Views{{0, 0}, {0, 0}, {0, 0, 0, 0}});
  // N = 3: timeline 0 0 0 1 1 1 2 2 (see the boundary test) in train and eval alike.
  const std::vector<int> t3 = {0, 0, 0, 1, 1, 1, 2, 2};
  CHECK(to_timeline(l, sample_eval(l, 3)) == t3);
  CHECK(to_timeline(l, sample_train(l, 3, rng)) == t3);
  CHECK(sample_eval(l, 3).frames == Views{{1, 2}, {0, 1}, {0, 0, 1, 2}});
  CHECK(sample_test(l, 3, 4, 5).frames == sample_eval(l, 3).frames);
  CHECK_THROWS_AS(sample_eval(l, 0), std::invalid_argument);
}

TEST_CASE("test draws are evenly offset inside the segments") {
  const ElementLayout l = make_layout({2, 2, 4});
  // T = 5, t = 0: begin + floor(len/10): +0 for len 9, +1 for len 10.
  CHECK(to_timeline(l, sample_test(l, 75, 0, 5)) == std::vector<int>{0, 9, 19, 28, 37, 47, 56, 66});
  // t = 4: begin + floor(9*len/10): +8 for len 9, +9 for len 10 (the last frame of each segment).
  CHECK(to_timeline(l, sample_test(l, 75, 4, 5)) == std::vector<int>{8, 17, 27, 36, 45, 55, 64, 74});
  CHECK(sample_test(l, 75, 0, 1) == sample_eval(l, 75));
  CHECK(sample_test(l, 75, 2, 5) == sample_eval(l, 75));  // offset 0.5 is the centre
  CHECK_THROWS_AS(sample_test(l, 75, 5, 5), std::invalid_argument);
}

TEST_CASE("union of weak and strong draws, with positions") {
  const ElementLayout l = make_layout({2, 2, 4});
  const ElementSample weak{{{32, 70}, {13, 51}, {4, 23, 41, 60}}};
  const ElementSample strong{{{70, 30}, {51, 13}, {4, 22, 41, 61}}};
  const FrameUnion u = union_indices({weak, strong});
  CHECK(u.frames == std::vector<int>{4, 13, 22, 23, 30, 32, 41, 51, 60, 61, 70});
  REQUIRE(u.positions.size() == 2);
  for (std::size_t d = 0; d < 2; ++d) {
    const ElementSample& s = d == 0 ? weak : strong;
    for (std::size_t v = 0; v < 3; ++v) {
      for (std::size_t k = 0; k < s.frames[v].size(); ++k) {
        CHECK(u.frames[static_cast<std::size_t>(u.positions[d][v][k])] == s.frames[v][k]);
      }
    }
  }
  CHECK(u.positions[1][0] == std::vector<int>{10, 4});
  CHECK(union_indices({}).frames.empty());
}

TEST_CASE("perturbation names") {
  for (auto p : kAllPerturbations) CHECK(parse_perturbation(perturbation_name(p)) == p);
  CHECK(parse_perturbation("moderate") == TemporalPerturbation::moderate);
  CHECK_THROWS_WITH_AS(parse_perturbation("reverse"),
                       doctest::Contains("valid: none, moderate, all_reverse, local_shuffle, all_shuffle, "
                                         "warping, t_drop, t_half"),
                       std::invalid_argument);
}

TEST_CASE("order perturbations on the eval draw of a 75-frame clip") {
  const ElementLayout l = make_layout({2, 2, 4});
  const ElementSample s = sample_eval(l, 75);  // {{32,70},{13,51},{4,23,41,60}}
  Rng rng(3, 0, 0, Purpose::perturb, Draw::strong);

  CHECK(perturb(TemporalPerturbation::none, l, s, 75, rng) == s);
  CHECK(perturb(TemporalPerturbation::moderate, l, s, 75, rng).frames ==
        Views{{70, 32}, {51, 13}, {4, 23, 41, 60}});
  CHECK(perturb(TemporalPerturbation::all_reverse, l, s, 75, rng).frames ==
        Views{{70, 32}, {51, 13}, {60, 41, 23, 4}});
  // A single-view set has no fine-level view: moderate leaves it alone, all_reverse does not.
  const ElementLayout one = make_layout({8});
  const ElementSample s1 = sample_eval(one, 75);
  CHECK(perturb(TemporalPerturbation::moderate, one, s1, 75, rng) == s1);
  CHECK(perturb(TemporalPerturbation::all_reverse, one, s1, 75, rng).frames[0] ==
        std::vector<int>{70, 60, 51, 41, 32, 23, 13, 4});

  // local_shuffle: fine views are permutations of themselves, the coarse view intact.
  const ElementLayout l8 = make_layout({4, 4, 8});
  const ElementSample s8 = sample_eval(l8, 160);
  bool changed = false;
  for (std::uint64_t i = 0; i < 50; ++i) {
    Rng r(3, 0, i, Purpose::perturb, Draw::strong);
    const ElementSample p = perturb(TemporalPerturbation::local_shuffle, l8, s8, 160, r);
    REQUIRE(p.frames[2] == s8.frames[2]);
    for (std::size_t v = 0; v < 2; ++v) REQUIRE(sorted(p.frames[v]) == sorted(s8.frames[v]));
    changed = changed || p != s8;
  }
  CHECK(changed);

  // all_shuffle: the whole draw is a permutation; frames move between views.
  bool crossed = false;
  bool coarse_touched = false;
  for (std::uint64_t i = 0; i < 50; ++i) {
    Rng r(3, 0, i, Purpose::perturb, Draw::strong);
    const ElementSample p = perturb(TemporalPerturbation::all_shuffle, l, s, 75, r);
    REQUIRE(sorted(all_frames(p)) == sorted(all_frames(s)));
    for (std::size_t v = 0; v < 3; ++v) REQUIRE(p.frames[v].size() == s.frames[v].size());
    crossed = crossed || sorted(p.frames[0]) != sorted(s.frames[0]);
    coarse_touched = coarse_touched || p.frames[2] != s.frames[2];
  }
  CHECK(crossed);
  CHECK(coarse_touched);
}

TEST_CASE("warping keeps length and order and stretches anchors") {
  // On the timeline 0..7 the slot map is visible directly.
  const ElementLayout l = make_layout({8});
  const ElementSample id{{{0, 1, 2, 3, 4, 5, 6, 7}}};
  std::map<std::size_t, int> distinct_counts;  // distinct frames -> how often
  for (std::uint64_t i = 0; i < 600; ++i) {
    Rng r(11, 0, i, Purpose::perturb, Draw::strong);
    const std::vector<int> w = perturb(TemporalPerturbation::warping, l, id, 8, r).frames[0];
    REQUIRE(w.size() == 8);
    REQUIRE(std::is_sorted(w.begin(), w.end()));  // time never runs backwards
    for (int f : w) REQUIRE((f >= 0 && f < 8));
    const std::set<int> d(w.begin(), w.end());
    ++distinct_counts[d.size()];
  }
  // Identity (8 distinct), 2 anchors (<= 2 distinct), 4 anchors (<= 4): roughly a third each.
  CHECK(distinct_counts.count(8) == 1);
  CHECK(distinct_counts[8] > 150);
  int at_most_2 = 0, three_or_four = 0;
  for (const auto& [n, c] : distinct_counts) {
    CHECK((n <= 4 || n == 8));
    if (n <= 2) at_most_2 += c;
    if (n == 3 || n == 4) three_or_four += c;
  }
  CHECK(at_most_2 > 150);
  CHECK(three_or_four > 100);

  // Hand-checked slot map: anchors {2, 5} with cut 4 -> 2 2 2 2 5 5 5 5 is one of the outcomes;
  // every outcome is a non-decreasing run of anchors starting with the first anchor.
  const ElementLayout l224 = make_layout({2, 2, 4});
  const ElementSample s = sample_eval(l224, 75);
  for (std::uint64_t i = 0; i < 100; ++i) {
    Rng r(12, 0, i, Purpose::perturb, Draw::strong);
    const ElementSample p = perturb(TemporalPerturbation::warping, l224, s, 75, r);
    const std::vector<int> t = to_timeline(l224, p);
    REQUIRE(std::is_sorted(t.begin(), t.end()));
    for (int f : t) REQUIRE(std::count(kCentres75.begin(), kCentres75.end(), f) == 1);
  }
}

TEST_CASE("t_drop shows half the timeline at half speed") {
  const ElementLayout l = make_layout({2, 2, 4});
  const ElementSample s = sample_eval(l, 75);
  std::set<int> starts;
  for (std::uint64_t i = 0; i < 200; ++i) {
    Rng r(5, 0, i, Purpose::perturb, Draw::strong);
    const std::vector<int> t = to_timeline(l, perturb(TemporalPerturbation::t_drop, l, s, 75, r));
    REQUIRE(t.size() == 8);
    // t = c[s], c[s], c[s+1], c[s+1], ... for a start s in [0, 4].
    const auto it = std::find(kCentres75.begin(), kCentres75.end(), t[0]);
    REQUIRE(it != kCentres75.end());
    const auto start = static_cast<std::size_t>(it - kCentres75.begin());
    REQUIRE(start <= 4);
    for (std::size_t p = 0; p < 8; ++p) REQUIRE(t[p] == kCentres75[start + p / 2]);
    starts.insert(static_cast<int>(start));
  }
  CHECK(starts == std::set<int>{0, 1, 2, 3, 4});
}

TEST_CASE("t_half keeps the draw inside a random half-length window") {
  const ElementLayout l = make_layout({2, 2, 4});
  std::set<int> windows;
  for (std::uint64_t i = 0; i < 200; ++i) {
    Rng fr(9, 0, i, Purpose::frames);
    const ElementSample s = sample_train(l, 75, fr);
    Rng r(9, 0, i, Purpose::perturb, Draw::strong);
    const ElementSample p = perturb(TemporalPerturbation::t_half, l, s, 75, r);
    const std::vector<int> t = to_timeline(l, p);
    REQUIRE(std::is_sorted(t.begin(), t.end()));
    REQUIRE(t.front() >= 0);
    REQUIRE(t.back() < 75);
    REQUIRE(t.back() - t.front() < 38);  // H = ceil(75/2) = 38
    for (std::size_t v = 0; v < 3; ++v) REQUIRE(p.frames[v].size() == s.frames[v].size());
    windows.insert(t.front() / 10);
  }
  CHECK(windows.size() >= 3);  // the window moves
  // Hand-computed: eval centres of a 10-frame clip, one view [4]: 1 3 6 8 (segments of 2-3 frames,
  // boundaries 0 2 5 7 10). H = 5; frame f -> w0 + floor(f*5/10) = w0 + {0, 1, 3, 4}.
  const ElementLayout l4 = make_layout({4});
  const ElementSample s4 = sample_eval(l4, 10);
  CHECK(s4.frames[0] == std::vector<int>{1, 3, 6, 8});
  Rng r(1, 0, 0, Purpose::perturb);
  const std::vector<int> h = perturb(TemporalPerturbation::t_half, l4, s4, 10, r).frames[0];
  const int w0 = h[0];
  CHECK((w0 >= 0 && w0 <= 5));
  CHECK(h == std::vector<int>{w0, w0 + 1, w0 + 3, w0 + 4});
  // A one-frame clip stays on frame 0.
  Rng r1(1, 0, 0, Purpose::perturb);
  CHECK(perturb(TemporalPerturbation::t_half, l, sample_eval(l, 1), 1, r1) == sample_eval(l, 1));
}

TEST_CASE("perturbations keep short clips within range") {
  const ElementLayout l = make_layout({2, 2, 4});
  for (int n : {1, 2, 3, 7, 8, 9}) {
    for (auto kind : kAllPerturbations) {
      Rng fr(2, 0, static_cast<std::uint64_t>(n), Purpose::frames);
      const ElementSample s = sample_train(l, n, fr);
      Rng r(2, 0, static_cast<std::uint64_t>(n), Purpose::perturb);
      const ElementSample p = perturb(kind, l, s, n, r);
      for (std::size_t v = 0; v < 3; ++v) REQUIRE(p.frames[v].size() == s.frames[v].size());
      for (int f : all_frames(p)) REQUIRE((f >= 0 && f < n));
    }
  }
  const ElementSample wrong{{{1, 2}}};
  Rng r(0);
  CHECK_THROWS_AS(perturb(TemporalPerturbation::moderate, l, wrong, 10, r), std::invalid_argument);
}

TEST_CASE("random streams: keys, pinned values, distributions") {
  // Pinned so that a change to the hashing (which would change every run) is noticed.
  CHECK(derive_seed(0, 0, 0, Purpose::frames) == derive_seed(StreamKey{}));
  const std::uint64_t a = derive_seed(1, 1, 0, Purpose::frames);
  const std::uint64_t b = derive_seed(1, 0, 1, Purpose::frames);
  CHECK(a != b);
  CHECK(derive_seed(1, 0, 0, Purpose::frames, Draw::weak) !=
        derive_seed(1, 0, 0, Purpose::frames, Draw::strong));
  CHECK(derive_seed(1, 0, 0, Purpose::crop) != derive_seed(1, 0, 0, Purpose::flip));
  CHECK(derive_seed(1, 0, 0, Purpose::crop, Draw::weak, 0) !=
        derive_seed(1, 0, 0, Purpose::crop, Draw::weak, 1));
  CHECK(purpose_name(Purpose::channel_dropout) == "channel_dropout");

  // No collisions over a grid of keys.
  std::set<std::uint64_t> seeds;
  for (std::uint64_t e = 0; e < 10; ++e)
    for (std::uint64_t i = 0; i < 100; ++i)
      for (std::uint32_t p = 1; p <= 4; ++p) seeds.insert(derive_seed(42, e, i, static_cast<Purpose>(p)));
  CHECK(seeds.size() == 4000);

  Rng r(123);
  int lo = 0, hi = 0;
  for (int i = 0; i < 20000; ++i) {
    const int v = r.uniform_int(-2, 2);
    REQUIRE((v >= -2 && v <= 2));
    lo += v == -2;
    hi += v == 2;
    const double u = r.uniform();
    REQUIRE((u >= 0.0 && u < 1.0));
  }
  CHECK(lo > 3500);
  CHECK(hi > 3500);
  CHECK(r.uniform_int(5, 5) == 5);
  CHECK_THROWS_AS(r.uniform_int(3, 2), std::invalid_argument);
  CHECK_THROWS_AS(r.below(0), std::invalid_argument);
  CHECK(r.uniform_int(INT32_MIN, INT32_MAX) != r.uniform_int(INT32_MIN, INT32_MAX));
  std::vector<int> v = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  r.shuffle(v);
  CHECK(sorted(v) == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(!r.bernoulli(0.0));
  CHECK(r.bernoulli(1.0));
}

TEST_CASE("spatial draws") {
  CHECK(resized_size({320, 240}, 256) == Size{341, 256});  // floor(320*256/240) = 341
  CHECK(resized_size({240, 320}, 256) == Size{256, 341});
  CHECK(resized_size({640, 360}, 224) == Size{398, 224});
  CHECK(resized_size({100, 100}, 256) == Size{256, 256});
  CHECK_THROWS_AS(resized_size({0, 10}, 256), std::invalid_argument);

  Rng r(77);
  std::set<int> sides;
  int flips = 0;
  int dropped = 0;
  const int n = 10000;
  for (int i = 0; i < n; ++i) {
    const int s = draw_short_side(r, 256, 320);
    REQUIRE((s >= 256 && s <= 320));
    sides.insert(s);
    const Size sz = resized_size({640, 360}, s);
    const CropBox c = draw_crop(r, sz, 224);
    REQUIRE((c.x >= 0 && c.y >= 0 && c.x + c.width <= sz.width && c.y + c.height <= sz.height));
    flips += draw_flip(r);
    for (float m : draw_channel_dropout(r)) {
      REQUIRE((m == 0.0f || m == doctest::Approx(1.25f)));
      dropped += m == 0.0f;
    }
  }
  CHECK(sides.size() == 65);  // every value of [256, 320] occurs
  CHECK(flips == doctest::Approx(n * 0.5).epsilon(0.05));
  CHECK(dropped == doctest::Approx(3 * n * 0.2).epsilon(0.05));
  CHECK(draw_channel_dropout(r, 3, 1.0) == std::vector<float>{0.0f, 0.0f, 0.0f});
  CHECK(draw_channel_dropout(r, 3, 0.0) == std::vector<float>{1.0f, 1.0f, 1.0f});
  CHECK_THROWS_AS(draw_crop(r, {200, 300}, 224), std::invalid_argument);

  const SpatialParams p =
      draw_spatial(SpatialConfig{}, {640, 360}, StreamKey{1, 2, 3, Purpose::frames, Draw::weak});
  CHECK(p.resized == resized_size({640, 360}, p.short_side));
  CHECK(p.crop.width == 224);
  // The purpose in the key is replaced, so any purpose gives the same parameters.
  const SpatialParams q =
      draw_spatial(SpatialConfig{}, {640, 360}, StreamKey{1, 2, 3, Purpose::mix, Draw::weak});
  CHECK(p.crop == q.crop);
  CHECK(p.flip == q.flip);
}

TEST_CASE("multi-view test sampling: T temporal x 3 spatial crops") {
  // Wide frame 398x224, crop 224: x = 0, ceil(174/2) = 87, 174; y = 0.
  CHECK(test_crop({398, 224}, 224, 0, 3) == CropBox{0, 0, 224, 224});
  CHECK(test_crop({398, 224}, 224, 1, 3) == CropBox{87, 0, 224, 224});
  CHECK(test_crop({398, 224}, 224, 2, 3) == CropBox{174, 0, 224, 224});
  // Tall: along y; odd slack rounds the centre up (SlowFast's ceil): 225 wide -> x = 1.
  CHECK(test_crop({225, 300}, 224, 0, 3) == CropBox{1, 0, 224, 224});
  CHECK(test_crop({225, 300}, 224, 1, 3) == CropBox{1, 38, 224, 224});
  CHECK(test_crop({225, 300}, 224, 2, 3) == CropBox{1, 76, 224, 224});
  CHECK(test_crop({299, 224}, 224, 0, 1) == CropBox{38, 0, 224, 224});
  CHECK_THROWS_AS(test_crop({398, 224}, 224, 3, 3), std::invalid_argument);

  const ElementLayout l = make_layout({2, 2, 4});
  const std::vector<TestView> views = test_views(l, 75, {398, 224}, 224, 5, 3);
  REQUIRE(views.size() == 15);
  for (std::size_t i = 0; i < views.size(); ++i) {
    CHECK(views[i].temporal_index == static_cast<int>(i / 3));
    CHECK(views[i].spatial_index == static_cast<int>(i % 3));
    CHECK(views[i].sample == sample_test(l, 75, static_cast<int>(i / 3), 5));
    CHECK(views[i].crop == test_crop({398, 224}, 224, static_cast<int>(i % 3), 3));
  }
  CHECK_THROWS_AS(test_views(l, 75, {398, 224}, 224, 0, 3), std::invalid_argument);
}

namespace {

// Everything one training sample draws: weak and strong frames, perturbation, spatial, dropout.
struct SampleDraw {
  ElementSample weak;
  ElementSample strong;
  SpatialParams weak_spatial;
  SpatialParams strong_spatial;
  std::vector<float> dropout;
  bool operator==(const SampleDraw& o) const {
    return weak == o.weak && strong == o.strong && weak_spatial.crop == o.weak_spatial.crop &&
           weak_spatial.flip == o.weak_spatial.flip && weak_spatial.short_side == o.weak_spatial.short_side &&
           strong_spatial.crop == o.strong_spatial.crop && strong_spatial.flip == o.strong_spatial.flip &&
           dropout == o.dropout;
  }
};

SampleDraw draw_sample(const ElementLayout& l, std::uint64_t seed, std::uint64_t epoch, std::uint64_t index,
                       TemporalPerturbation kind) {
  const int n = 40 + static_cast<int>(index % 97);  // clip lengths vary per clip
  SampleDraw d;
  Rng wf(seed, epoch, index, Purpose::frames, Draw::weak);
  d.weak = sample_train(l, n, wf);
  Rng sf(seed, epoch, index, Purpose::frames, Draw::strong);
  Rng sp(seed, epoch, index, Purpose::perturb, Draw::strong);
  d.strong = perturb(kind, l, sample_train(l, n, sf), n, sp);
  d.weak_spatial =
      draw_spatial(SpatialConfig{}, {640, 360}, StreamKey{seed, epoch, index, Purpose::crop, Draw::weak});
  d.strong_spatial =
      draw_spatial(SpatialConfig{}, {640, 360}, StreamKey{seed, epoch, index, Purpose::crop, Draw::strong});
  Rng cd(seed, epoch, index, Purpose::channel_dropout, Draw::strong);
  d.dropout = draw_channel_dropout(cd);
  return d;
}

}  // namespace

TEST_CASE("determinism: same key same draw, new epoch new draw, thread count irrelevant") {
  const ElementLayout l = make_layout({2, 2, 4});
  const auto kind = TemporalPerturbation::warping;
  constexpr std::uint64_t kClips = 2000;

  std::vector<SampleDraw> serial;
  serial.reserve(kClips);
  for (std::uint64_t i = 0; i < kClips; ++i) serial.push_back(draw_sample(l, 42, 3, i, kind));

  // Same key, drawn again: identical.
  for (std::uint64_t i = 0; i < kClips; i += 97) CHECK(draw_sample(l, 42, 3, i, kind) == serial[i]);

  // Another epoch: most clips differ (a few may coincide by chance).
  int same_frames = 0, same_crops = 0;
  for (std::uint64_t i = 0; i < 200; ++i) {
    const SampleDraw other = draw_sample(l, 42, 4, i, kind);
    same_frames += other.weak == serial[i].weak;
    same_crops += other.weak_spatial.crop == serial[i].weak_spatial.crop;
  }
  CHECK(same_frames < 5);
  CHECK(same_crops < 5);
  // Weak and strong draws of one clip are independent.
  int weak_is_strong = 0;
  for (std::uint64_t i = 0; i < 200; ++i)
    weak_is_strong += serial[i].weak_spatial.crop == serial[i].strong_spatial.crop;
  CHECK(weak_is_strong < 5);

  // Parallel, in an interleaved order per thread count: same draws as serial.
  for (unsigned threads : {2u, 3u, 7u}) {
    std::vector<SampleDraw> parallel(kClips);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        // Each thread walks its clips backwards so the global call order differs from serial.
        for (std::uint64_t i = kClips; i-- > 0;) {
          if (i % threads == t) parallel[i] = draw_sample(l, 42, 3, i, kind);
        }
      });
    }
    for (auto& th : pool) th.join();
    bool all_equal = true;
    for (std::uint64_t i = 0; i < kClips; ++i) all_equal = all_equal && parallel[i] == serial[i];
    CHECK(all_equal);
  }
}
