#include "io/random.h"

#include <stdexcept>

namespace sefar::io {

namespace {

constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// Folds one key field into the running hash. Each field gets its own position constant so that
// swapped values (epoch 1, index 0 vs epoch 0, index 1) give different seeds.
constexpr std::uint64_t fold(std::uint64_t h, std::uint64_t value, std::uint64_t position) {
  return mix64(h ^ mix64(value + kGolden * position));
}

}  // namespace

std::uint64_t derive_seed(const StreamKey& key) {
  std::uint64_t h = mix64(key.seed ^ 0x5ef4a2c0ffee1234ULL);
  h = fold(h, key.epoch, 1);
  h = fold(h, key.index, 2);
  h = fold(h, static_cast<std::uint64_t>(key.purpose), 3);
  h = fold(h, static_cast<std::uint64_t>(key.draw), 4);
  h = fold(h, key.sub, 5);
  return h;
}

Rng::Rng(std::uint64_t seed) {
  // The xoshiro authors' recommended seeding: consecutive splitmix64 outputs, never all zero.
  std::uint64_t x = seed;
  for (auto& word : s_) {
    x += kGolden;
    word = mix64(x);
  }
}

std::uint64_t Rng::below(std::uint64_t n) {
  if (n == 0) throw std::invalid_argument("Rng::below: empty range");
  // Values below `threshold` would make the low residues more likely; 2^64 mod n of them.
  const std::uint64_t threshold = (0 - n) % n;
  for (;;) {
    const std::uint64_t r = next();
    if (r >= threshold) return r % n;
  }
}

int Rng::uniform_int(int lo, int hi) {
  if (lo > hi) throw std::invalid_argument("Rng::uniform_int: lo > hi");
  const auto span = static_cast<std::uint64_t>(static_cast<std::int64_t>(hi) - lo) + 1;
  return static_cast<int>(static_cast<std::int64_t>(lo) + static_cast<std::int64_t>(below(span)));
}

}  // namespace sefar::io
