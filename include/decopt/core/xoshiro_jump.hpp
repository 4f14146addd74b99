// decopt/core/xoshiro_jump.hpp — jumping xoshiro256 ahead by any number of steps.
//
// xoshiro256's state update is a linear map A over GF(2)^256, so n steps are A^n. With p(x) the
// characteristic polynomial of A (degree 256; primitive, hence the full period 2^256 − 1), the
// Cayley–Hamilton theorem gives A^n = q(A) for q(x) = x^n mod p(x): jumping is 256 steps that
// XOR together the states whose coefficient in q is 1 (the method of Haramoto, Matsumoto,
// Nishimura, Panneton & L'Ecuyer, "Efficient jump ahead for F2-linear random number generators",
// INFORMS J. Computing 2008; the 2^128 and 2^192 JUMP constants of Blackman & Vigna's reference
// code are two such q).
//
// p itself is found at compile time with the Berlekamp–Massey algorithm (Massey, "Shift-register
// synthesis and BCH decoding", IEEE Trans. Inf. Theory 1969) from 512 successive values of one
// state bit: the minimal polynomial of that sequence divides p and, p being irreducible, is p.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

namespace decopt::detail {

/// A polynomial over GF(2) of degree < 256: bit i of word i/64 is the coefficient of x^i.
using Gf2Poly256 = std::array<std::uint64_t, 4>;

/// One xoshiro256 state update (no output scrambler): the linear map A.
constexpr void xoshiro256_step(std::array<std::uint64_t, 4>& s) noexcept {
  const std::uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = (s[3] << 45) | (s[3] >> 19);
}

/// The characteristic polynomial p(x) = x^256 + low(x) of A; returns low. (Word-parallel, so that
/// it stays far inside compilers' constant-evaluation step limits.)
constexpr Gf2Poly256 xoshiro256_characteristic_low() noexcept {
  constexpr int degree = 256, count = 2 * degree, words = degree / 64 + 1;  // polynomials of degree ≤ 256
  std::array<std::uint64_t, 4> s{0x9e3779b97f4a7c15ULL, 0xbf58476d1ce4e5b9ULL, 0x94d049bb133111ebULL, 1};
  // Berlekamp–Massey: the shortest recurrence Σ_{i=0..L} c_i·bit[n−i] = 0 (c_0 = 1) of the
  // sequence bit[n] = bit 0 of s[0] after n steps. window bit i holds bit[n − i].
  std::uint64_t c[words] = {1}, b[words] = {1}, window[words] = {};
  int length = 0, shift = 1;
  for (int n = 0; n < count; ++n) {
    for (int w = words - 1; w > 0; --w) window[w] = (window[w] << 1) | (window[w - 1] >> 63);
    window[0] = (window[0] << 1) | (s[0] & 1);
    xoshiro256_step(s);
    std::uint64_t parity = 0;
    for (int w = 0; w < words; ++w) parity ^= c[w] & window[w];
    if (std::popcount(parity) % 2 == 0) {
      ++shift;
      continue;
    }
    std::uint64_t previous[words];
    for (int w = 0; w < words; ++w) previous[w] = c[w];
    for (int w = words - 1; w >= 0; --w) {  // c ^= b·x^shift (its degree stays ≤ 256)
      const int from = w - shift / 64, bits = shift % 64;
      std::uint64_t moved = 0;
      if (from >= 0) moved = b[from] << bits;
      if (from >= 1 && bits != 0) moved |= b[from - 1] >> (64 - bits);
      c[w] ^= moved;
    }
    if (2 * length <= n) {
      length = n + 1 - length;
      for (int w = 0; w < words; ++w) b[w] = previous[w];
      shift = 1;
    } else {
      ++shift;
    }
  }
  // p(x) = x^L·C(1/x): the coefficient of x^{L−i} is c_i. (L = 256 because p is primitive.)
  Gf2Poly256 low{};
  for (int i = 1; i <= degree; ++i)
    if ((c[i / 64] >> (i % 64)) & 1) low[static_cast<std::size_t>((degree - i) / 64)] |= 1ULL << ((degree - i) % 64);
  return low;
}

inline constexpr Gf2Poly256 xoshiro256_characteristic = xoshiro256_characteristic_low();

/// a·b mod p(x), by Horner's rule on the bits of b.
constexpr Gf2Poly256 gf2_mulmod(const Gf2Poly256& a, const Gf2Poly256& b) noexcept {
  Gf2Poly256 r{};
  for (int i = 255; i >= 0; --i) {
    const std::uint64_t carry = r[3] >> 63;  // r·x overflows into x^256 = low(x)
    r[3] = (r[3] << 1) | (r[2] >> 63);
    r[2] = (r[2] << 1) | (r[1] >> 63);
    r[1] = (r[1] << 1) | (r[0] >> 63);
    r[0] <<= 1;
    if (carry != 0)
      for (int w = 0; w < 4; ++w) r[static_cast<std::size_t>(w)] ^= xoshiro256_characteristic[static_cast<std::size_t>(w)];
    if ((b[static_cast<std::size_t>(i / 64)] >> (i % 64)) & 1)
      for (int w = 0; w < 4; ++w) r[static_cast<std::size_t>(w)] ^= a[static_cast<std::size_t>(w)];
  }
  return r;
}

/// q(x) = x^distance mod p(x), by square-and-multiply.
constexpr Gf2Poly256 xoshiro256_jump_polynomial(std::uint64_t distance) noexcept {
  Gf2Poly256 result{1, 0, 0, 0};
  Gf2Poly256 power{2, 0, 0, 0};  // x^(2^k)
  for (; distance != 0; distance >>= 1) {
    if (distance & 1) result = gf2_mulmod(result, power);
    power = gf2_mulmod(power, power);
  }
  return result;
}

/// s ← A^n·s for the n whose jump polynomial is q.
constexpr void xoshiro256_jump(std::array<std::uint64_t, 4>& s, const Gf2Poly256& q) noexcept {
  std::array<std::uint64_t, 4> acc{};
  for (int i = 0; i < 256; ++i) {
    if ((q[static_cast<std::size_t>(i / 64)] >> (i % 64)) & 1)
      for (int w = 0; w < 4; ++w) acc[static_cast<std::size_t>(w)] ^= s[static_cast<std::size_t>(w)];
    xoshiro256_step(s);
  }
  s = acc;
}

}  // namespace decopt::detail
