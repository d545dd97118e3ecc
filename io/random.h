// Deterministic random streams.
//
// Every random draw in the pipeline comes from a stream keyed by (run seed, epoch, sample index,
// purpose, draw, sub-stream), never from thread identity or call order across samples, so a run
// reproduces bit-for-bit whatever the thread count (DESIGN §3 "Determinism"). The key is hashed
// with splitmix64 mixing into a 64-bit seed; the stream itself is xoshiro256** seeded from it.
//
// Distributions are written here instead of using <random>'s: std::uniform_int_distribution and
// friends are implementation-defined, so libstdc++ and libc++ would draw different frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include "util/enum_table.h"

namespace sefar::io {

// The splitmix64 output function: a bijective 64-bit mixer with good avalanche.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// What a stream is used for. Separate purposes keep draws independent: turning flips off does not
// move the crops. Append new purposes with new numbers; never renumber (that changes every draw).
enum class Purpose : std::uint32_t {
  frames = 1,           // frame choice inside each temporal segment
  scale = 2,            // short-side resize target
  crop = 3,             // crop offsets
  flip = 4,             // horizontal flip
  perturb = 5,          // random temporal perturbations (shuffles, warping, t_drop, t_half)
  channel_dropout = 6,  // channel dropout masks
  shuffle = 7,          // dataset order per epoch
  mix = 8,              // Tube TokenMix: lambda, masks, batch permutation
  teacher_dropout = 9,  // Monte-Carlo dropout of the teacher
  synth = 10,           // synthetic data generation
  init = 11,            // parameter initialisation
};

inline constexpr auto kPurposes = util::enum_table<Purpose>(
    {
        {Purpose::frames, "frames"},
        {Purpose::scale, "scale"},
        {Purpose::crop, "crop"},
        {Purpose::flip, "flip"},
        {Purpose::perturb, "perturb"},
        {Purpose::channel_dropout, "channel_dropout"},
        {Purpose::shuffle, "shuffle"},
        {Purpose::mix, "mix"},
        {Purpose::teacher_dropout, "teacher_dropout"},
        {Purpose::synth, "synth"},
        {Purpose::init, "init"},
    },
    "purpose");
inline std::string_view purpose_name(Purpose purpose) {
  return kPurposes.name(purpose);
}

// Which draw of a sample: weak and strong views of one clip are independent draws.
enum class Draw : std::uint32_t { single = 0, weak = 1, strong = 2 };

// Everything that determines a stream. `sub` separates further streams of one draw (e.g. a view
// index or a test-view number); 0 when unused.
struct StreamKey {
  std::uint64_t seed = 0;
  std::uint64_t epoch = 0;
  std::uint64_t index = 0;
  Purpose purpose = Purpose::frames;
  Draw draw = Draw::single;
  std::uint32_t sub = 0;
};

std::uint64_t derive_seed(const StreamKey& key);
inline std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t epoch, std::uint64_t index,
                                 Purpose purpose, Draw draw = Draw::single, std::uint32_t sub = 0) {
  return derive_seed(StreamKey{seed, epoch, index, purpose, draw, sub});
}

// xoshiro256** (Blackman & Vigna): small state, fast, passes BigCrush. Also a C++
// UniformRandomBitGenerator, so it can feed standard algorithms where bit-exactness across
// standard libraries does not matter.
class Rng {
 public:
  using result_type = std::uint64_t;

  explicit Rng(std::uint64_t seed);
  explicit Rng(const StreamKey& key) : Rng(derive_seed(key)) {}
  Rng(std::uint64_t seed, std::uint64_t epoch, std::uint64_t index, Purpose purpose, Draw draw = Draw::single,
      std::uint32_t sub = 0)
      : Rng(derive_seed(seed, epoch, index, purpose, draw, sub)) {}

  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type{0}; }

  result_type next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  result_type operator()() { return next(); }

  // Uniform in [0, n), unbiased (rejection of the short top range). n must be > 0.
  std::uint64_t below(std::uint64_t n);
  // Uniform integer in [lo, hi], inclusive; lo <= hi.
  int uniform_int(int lo, int hi);
  // Uniform double in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // True with probability p (p <= 0: never, p >= 1: always).
  bool bernoulli(double p) { return uniform() < p; }

  // Fisher-Yates shuffle of [first, last) with random-access iterators.
  template <class It>
  void shuffle(It first, It last) {
    const auto n = static_cast<std::uint64_t>(last - first);
    for (std::uint64_t i = n; i > 1; --i) {
      const std::uint64_t j = below(i);
      using std::swap;
      swap(first[static_cast<std::ptrdiff_t>(i - 1)], first[static_cast<std::ptrdiff_t>(j)]);
    }
  }
  template <class Container>
  void shuffle(Container& c) {
    shuffle(c.begin(), c.end());
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

}  // namespace sefar::io
