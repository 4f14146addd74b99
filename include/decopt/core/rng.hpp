// decopt/core/rng.hpp — a fast, reproducible, splittable random number generator.
//
// xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom number generators", 2021) seeded
// through SplitMix64. Every draw is defined here, bit for bit, so the same seed gives the same
// stream on every compiler, standard library and transport (std:: distributions do not promise
// that).
//
// Splitting: `Rng::derive(seed, {node, round, purpose})` hashes a seed and a list of keys into an
// independent stream. Sender and receiver that know the same keys regenerate the same stream
// (shared dither, RandomK's subset) without sending it. `discard(n)` jumps n draws ahead, so
// segments of one stream can be generated in parallel (the dithered quantizer's SIMD lanes).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <numbers>
#include <span>

#include "decopt/core/xoshiro_jump.hpp"

namespace decopt {

namespace detail {
/// SplitMix64 finaliser: a bijective 64-bit mixer (Steele, Lea & Flood 2014).
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
/// Folds `value` into the running hash `h` (stream derivation, graph and schedule fingerprints).
constexpr std::uint64_t fold_hash(std::uint64_t h, std::uint64_t value) noexcept {
  return mix64(h ^ mix64(value + 0x9e3779b97f4a7c15ULL));
}
constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
}  // namespace detail

/// xoshiro256** generator. Satisfies std::uniform_random_bit_generator.
class Rng {
 public:
  using result_type = std::uint64_t;
  using State = std::array<std::uint64_t, 4>;

  /// Seeds the four state words from `seed` with SplitMix64 (never all zero).
  explicit Rng(std::uint64_t seed = 0) noexcept {
    std::uint64_t z = seed;
    for (auto& word : state_) {
      z += 0x9e3779b97f4a7c15ULL;
      word = detail::mix64(z);
    }
  }

  /// An independent stream for (seed, keys...): e.g. derive(seed, {node, round, purpose}).
  static Rng derive(std::uint64_t seed, std::initializer_list<std::uint64_t> keys) noexcept {
    std::uint64_t h = detail::mix64(seed ^ 0x6a09e667f3bcc909ULL);
    for (std::uint64_t key : keys) h = detail::fold_hash(h, key);
    return Rng(h);
  }

  /// An independent child stream; does not advance this generator.
  [[nodiscard]] Rng split(std::uint64_t stream) const noexcept {
    return derive(state_[0] ^ detail::rotl(state_[2], 17), {stream, state_[1], state_[3]});
  }

  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }

  /// Next 64 random bits.
  result_type operator()() noexcept { return next(); }
  result_type next() noexcept {
    const std::uint64_t result = detail::rotl(state_[1] * 5, 7) * 9;
    detail::xoshiro256_step(state_);
    return result;
  }

  /// Advances the stream by n draws in O(256·log n) work instead of O(n) (as std engines'
  /// discard; decopt/core/xoshiro_jump.hpp).
  void discard(std::uint64_t n) noexcept { jump(detail::xoshiro256_jump_polynomial(n)); }
  /// Advances by the distance that `q = xoshiro256_jump_polynomial(distance)` encodes: 256 steps,
  /// for a q computed once (at compile time where the distance is a constant).
  void jump(const detail::Gf2Poly256& q) noexcept { detail::xoshiro256_jump(state_, q); }

  /// Uniform double in [0, 1) with 53 random bits.
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  /// Two uniform floats in [0, 1) with 24 random bits each, from one 64-bit draw.
  std::array<float, 2> uniform_float_pair() noexcept {
    const std::uint64_t r = next();
    return {static_cast<float>(r >> 40) * 0x1.0p-24f,
            static_cast<float>((r >> 8) & 0xffffffULL) * 0x1.0p-24f};
  }

  /// Uniform float in [0, 1) with 24 random bits.
  float uniform_float() noexcept { return static_cast<float>(next() >> 40) * 0x1.0p-24f; }

  /// Uniform integer in [0, n) without modulo bias (Lemire 2019). n must be > 0.
  std::uint64_t below(std::uint64_t n) noexcept {
    __extension__ using u128 = unsigned __int128;
    u128 m = static_cast<u128>(next()) * n;
    auto low = static_cast<std::uint64_t>(m);
    if (low < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<u128>(next()) * n;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

  /// Standard normal by Box–Muller; one value per call (stateless, so checkpoints stay simple).
  double normal() noexcept {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

  /// Fills `out` with N(0, stddev²) samples, using both Box–Muller outputs.
  template <class T>
  void fill_normal(std::span<T> out, double stddev) noexcept {
    std::size_t i = 0;
    for (; i + 1 < out.size(); i += 2) {
      const double u1 = 1.0 - uniform();
      const double u2 = uniform();
      const double r = stddev * std::sqrt(-2.0 * std::log(u1));
      out[i] = static_cast<T>(r * std::cos(2.0 * std::numbers::pi * u2));
      out[i + 1] = static_cast<T>(r * std::sin(2.0 * std::numbers::pi * u2));
    }
    if (i < out.size()) out[i] = static_cast<T>(stddev * normal());
  }

  /// The full generator state, for checkpoints; restore with set_state.
  [[nodiscard]] const State& state() const noexcept { return state_; }
  void set_state(const State& s) noexcept { state_ = s; }

  friend bool operator==(const Rng&, const Rng&) = default;

 private:
  State state_{};
};

}  // namespace decopt
