// decopt/core/codes.hpp — universal integer codes on top of BitWriter/BitReader.
//
//   Elias gamma (n ≥ 1):  ⌊log2 n⌋ in unary, then the ⌊log2 n⌋ low bits of n.   2⌊log2 n⌋+1 bits
//   Elias delta (n ≥ 1):  gamma(⌊log2 n⌋ + 1), then the ⌊log2 n⌋ low bits of n.  ≈ log2 n + 2 log2 log2 n
//   Golomb(b)   (n ≥ 0):  ⌊n/b⌋ in unary, then n mod b in truncated binary.    (Golomb 1966)
//   Rice(k)     (n ≥ 0):  Golomb with b = 2^k.
// Elias, "Universal codeword sets and representations of the integers", IEEE T-IT 1975.
// For a geometric source with success probability p, the optimal Golomb parameter is
// b = ⌈log(2 − p) / −log(1 − p)⌉ (Gallager & van Voorhis 1975): see optimal_golomb_parameter.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

#include "decopt/core/bit_stream.hpp"

namespace decopt::codes {

/// ⌊log2 n⌋ for n ≥ 1.
constexpr int floor_log2(std::uint64_t n) noexcept { return 63 - std::countl_zero(n); }

/// Bits in the Elias-gamma code of n ≥ 1.
constexpr int elias_gamma_bits(std::uint64_t n) noexcept { return 2 * floor_log2(n) + 1; }
/// Bits in the Elias-delta code of n ≥ 1.
constexpr int elias_delta_bits(std::uint64_t n) noexcept {
  const int l = floor_log2(n);
  return l + elias_gamma_bits(static_cast<std::uint64_t>(l) + 1);
}

inline void write_elias_gamma(BitWriter& w, std::uint64_t n) {
  const int l = floor_log2(n);
  w.write_unary(static_cast<std::uint64_t>(l));
  w.write(n, l);  // write() masks to the low l bits; the leading one is implied
}
inline std::uint64_t read_elias_gamma(BitReader& r) {
  const int l = static_cast<int>(r.read_unary(63));
  return (std::uint64_t{1} << l) | r.read(l);
}

inline void write_elias_delta(BitWriter& w, std::uint64_t n) {
  const int l = floor_log2(n);
  write_elias_gamma(w, static_cast<std::uint64_t>(l) + 1);
  w.write(n, l);
}
inline std::uint64_t read_elias_delta(BitReader& r) {
  const std::uint64_t l1 = read_elias_gamma(r);
  if (l1 > 64) throw DecodeError("Elias-delta length field out of range");
  const int l = static_cast<int>(l1 - 1);
  return (std::uint64_t{1} << l) | r.read(l);
}

/// Golomb code with parameter b ≥ 1 (truncated binary remainder).
class Golomb {
 public:
  explicit Golomb(std::uint64_t b) noexcept : b_(b), k_(b <= 1 ? 0 : floor_log2(b - 1) + 1), cutoff_((std::uint64_t{1} << k_) - b) {}

  [[nodiscard]] std::uint64_t parameter() const noexcept { return b_; }

  void write(BitWriter& w, std::uint64_t n) const {
    w.write_unary(n / b_);
    write_remainder(w, n % b_);
  }
  /// `max_quotient` bounds the unary part so corrupt input cannot make the reader spin.
  [[nodiscard]] std::uint64_t read(BitReader& r, std::uint64_t max_quotient) const {
    const std::uint64_t q = r.read_unary(max_quotient);
    return q * b_ + read_remainder(r);
  }
  /// Exact code length of n.
  [[nodiscard]] std::uint64_t bits(std::uint64_t n) const noexcept {
    const std::uint64_t rem = n % b_;
    return n / b_ + 1 + (k_ == 0 ? 0 : (rem < cutoff_ ? k_ - 1 : k_));
  }

 private:
  void write_remainder(BitWriter& w, std::uint64_t rem) const {
    if (k_ == 0) return;
    if (rem < cutoff_) w.write(reverse_low(rem, k_ - 1), k_ - 1);
    else w.write(reverse_low(rem + cutoff_, k_), k_);
  }
  [[nodiscard]] std::uint64_t read_remainder(BitReader& r) const {
    if (k_ == 0) return 0;
    // Truncated binary is prefix-free MSB-first; our stream is LSB-first, so values are stored
    // bit-reversed and read one bit at a time after the first k−1.
    std::uint64_t v = k_ > 1 ? reverse_low(r.read(k_ - 1), k_ - 1) : 0;
    if (v < cutoff_) return v;
    v = (v << 1) | r.read(1);
    return v - cutoff_;
  }
  static std::uint64_t reverse_low(std::uint64_t v, int nbits) noexcept {
    std::uint64_t out = 0;
    for (int i = 0; i < nbits; ++i) out |= ((v >> i) & 1u) << (nbits - 1 - i);
    return out;
  }

  std::uint64_t b_;
  int k_;                 // ⌈log2 b⌉
  std::uint64_t cutoff_;  // 2^k − b: remainders below this take k−1 bits
};

/// Rice code: Golomb with b = 2^k, no truncation, one shift per value.
class Rice {
 public:
  explicit Rice(int k) noexcept : k_(k) {}
  [[nodiscard]] int parameter() const noexcept { return k_; }
  void write(BitWriter& w, std::uint64_t n) const {
    w.write_unary(n >> k_);
    w.write(n, k_);
  }
  [[nodiscard]] std::uint64_t read(BitReader& r, std::uint64_t max_quotient) const {
    const std::uint64_t q = r.read_unary(max_quotient);
    return (q << k_) | r.read(k_);
  }
  [[nodiscard]] std::uint64_t bits(std::uint64_t n) const noexcept { return (n >> k_) + 1 + static_cast<std::uint64_t>(k_); }

 private:
  int k_;
};

/// Optimal Golomb parameter for geometric run lengths with success probability p ∈ (0, 1]
/// (Gallager & van Voorhis 1975): the b with (1−p)^b + (1−p)^(b+1) ≤ 1 < (1−p)^(b−1) + (1−p)^b.
inline std::uint64_t optimal_golomb_parameter(double p) noexcept {
  if (!(p > 0.0) || p >= 1.0) return 1;
  const double q = 1.0 - p;
  const double b = std::ceil(std::log(1.0 + q) / -std::log(q));
  if (!(b >= 1.0)) return 1;
  return b > 1e18 ? std::uint64_t{1} << 60 : static_cast<std::uint64_t>(b);
}

}  // namespace decopt::codes
