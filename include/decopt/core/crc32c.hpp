// decopt/core/crc32c.hpp — CRC-32C (Castagnoli), the checksum of every compressed message.
//
// Castagnoli, Bräuer & Herrmann, "Optimization of cyclic redundancy-check codes with 24 and 32
// parity bits", IEEE T-Comm 1993: reflected polynomial 0x82F63B78, initial value and final XOR
// 0xFFFFFFFF (RFC 3720, iSCSI), so crc32c("123456789") = 0xE3069283. It detects every burst of
// up to 32 bits and any other corruption with probability 1 − 2^−32; it is not a MAC.
//
// x86-64 has an instruction for it (SSE4.2 crc32, 8 bytes per instruction, latency 3 cycles):
// three independent streams over adjacent blocks keep it busy every cycle, and their CRCs are
// joined with the "append n zero bytes" operator applied by table (Adler, crc32c.c, 2013). The
// instruction is used when the program is compiled for SSE4.2, or else when the processor has it
// (checked once at run time, the kernel compiled with a target attribute); everywhere else a
// portable slicing-by-8 loop gives the same value.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DECOPT_CRC32C_X86 1
#endif

namespace decopt {
namespace detail::crc32c {

inline constexpr std::uint32_t polynomial = 0x82F63B78u;  // reflected

/// Slicing-by-8 tables: table[k][b] is the register after byte b followed by k zero bytes.
constexpr std::array<std::array<std::uint32_t, 256>, 8> make_slicing_tables() {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  for (std::uint32_t b = 0; b < 256; ++b) {
    std::uint32_t c = b;
    for (int i = 0; i < 8; ++i) c = (c >> 1) ^ (polynomial & (0u - (c & 1u)));
    t[0][b] = c;
  }
  for (std::size_t k = 1; k < 8; ++k)
    for (std::size_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xffu];
  return t;
}
inline constexpr auto slicing = make_slicing_tables();

/// The raw register (no pre- or post-inversion) after `n` bytes at p, portable.
inline std::uint32_t portable(std::uint32_t c, const unsigned char* p, std::size_t n) noexcept {
  for (; n >= 8; n -= 8, p += 8) {
    std::uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    if constexpr (std::endian::native == std::endian::big) {
      lo = __builtin_bswap32(lo);
      hi = __builtin_bswap32(hi);
    }
    lo ^= c;
    c = slicing[7][lo & 0xffu] ^ slicing[6][(lo >> 8) & 0xffu] ^ slicing[5][(lo >> 16) & 0xffu] ^ slicing[4][lo >> 24] ^
        slicing[3][hi & 0xffu] ^ slicing[2][(hi >> 8) & 0xffu] ^ slicing[1][(hi >> 16) & 0xffu] ^ slicing[0][hi >> 24];
  }
  for (; n > 0; --n, ++p) c = (c >> 8) ^ slicing[0][(c ^ *p) & 0xffu];
  return c;
}

// ---- the operator "append `bytes` zero bytes" on the raw register, as a GF(2) 32×32 matrix ----
using Matrix = std::array<std::uint32_t, 32>;  // column j = the image of bit j

constexpr std::uint32_t times(const Matrix& m, std::uint32_t v) {
  std::uint32_t out = 0;
  for (int j = 0; v != 0; ++j, v >>= 1)
    if (v & 1u) out ^= m[static_cast<std::size_t>(j)];
  return out;
}
constexpr Matrix product(const Matrix& a, const Matrix& b) {  // a·b: first b, then a
  Matrix out{};
  for (std::size_t j = 0; j < 32; ++j) out[j] = times(a, b[j]);
  return out;
}
constexpr Matrix zero_bytes_operator(std::size_t bytes) {
  Matrix bit{};  // one zero bit: shift right, reduce by the polynomial when bit 0 falls out
  bit[0] = polynomial;
  for (std::size_t j = 1; j < 32; ++j) bit[j] = std::uint32_t{1} << (j - 1);
  Matrix power = product(bit, bit);
  power = product(power, power);
  power = product(power, power);  // one zero byte
  Matrix result{};
  for (std::size_t j = 0; j < 32; ++j) result[j] = std::uint32_t{1} << j;
  for (; bytes != 0; bytes >>= 1, power = product(power, power))
    if (bytes & 1u) result = product(power, result);
  return result;
}
/// The operator as four byte tables, so that applying it costs four lookups.
struct Shift {
  std::array<std::array<std::uint32_t, 256>, 4> table{};
  constexpr explicit Shift(std::size_t bytes) {
    const Matrix m = zero_bytes_operator(bytes);
    for (std::uint32_t b = 0; b < 256; ++b)
      for (std::size_t k = 0; k < 4; ++k) table[k][b] = times(m, b << (8 * k));
  }
  [[nodiscard]] std::uint32_t operator()(std::uint32_t c) const noexcept {
    return table[0][c & 0xffu] ^ table[1][(c >> 8) & 0xffu] ^ table[2][(c >> 16) & 0xffu] ^ table[3][c >> 24];
  }
};

// Block lengths of the three-stream loops: long blocks for throughput, short ones for the rest.
inline constexpr std::size_t long_block = 4096, short_block = 256;
inline constexpr Shift shift_long{long_block};
inline constexpr Shift shift_short{short_block};

#if defined(DECOPT_CRC32C_X86)
__attribute__((target("sse4.2"))) inline std::uint64_t step8(std::uint64_t c, const unsigned char* p) noexcept {
  std::uint64_t w;
  std::memcpy(&w, p, 8);
#if defined(__x86_64__)
  return _mm_crc32_u64(c, w);
#else
  c = _mm_crc32_u32(static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(w));
  return _mm_crc32_u32(static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(w >> 32));
#endif
}

/// Three interleaved streams of `block` bytes each, joined; returns the register, advances p, n.
__attribute__((target("sse4.2"))) inline std::uint32_t three_streams(std::uint32_t crc, const unsigned char*& p, std::size_t& n,
                                                                   std::size_t block, const Shift& shift) noexcept {
  std::uint64_t c0 = crc;
  while (n >= 3 * block) {
    std::uint64_t c1 = 0, c2 = 0;
    for (const unsigned char* end = p + block; p < end; p += 8) {
      c0 = step8(c0, p);
      c1 = step8(c1, p + block);
      c2 = step8(c2, p + 2 * block);
    }
    c0 = shift(static_cast<std::uint32_t>(c0)) ^ static_cast<std::uint32_t>(c1);
    c0 = shift(static_cast<std::uint32_t>(c0)) ^ static_cast<std::uint32_t>(c2);
    p += 2 * block;
    n -= 3 * block;
  }
  return static_cast<std::uint32_t>(c0);
}

/// The raw register after `n` bytes at p, with the crc32 instruction.
__attribute__((target("sse4.2"))) inline std::uint32_t hardware(std::uint32_t c, const unsigned char* p, std::size_t n) noexcept {
  for (; n > 0 && reinterpret_cast<std::uintptr_t>(p) % 8 != 0; --n, ++p) c = _mm_crc32_u8(c, *p);
  c = three_streams(c, p, n, long_block, shift_long);
  c = three_streams(c, p, n, short_block, shift_short);
  std::uint64_t c64 = c;
  for (; n >= 8; n -= 8, p += 8) c64 = step8(c64, p);
  c = static_cast<std::uint32_t>(c64);
  for (; n > 0; --n, ++p) c = _mm_crc32_u8(c, *p);
  return c;
}

/// True where the crc32 instruction may be used: compiled for it, or found at run time.
inline bool hardware_available() noexcept {
#if defined(__SSE4_2__)
  return true;
#else
  static const bool available = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") != 0;
  }();
  return available;
#endif
}
#endif

}  // namespace detail::crc32c

/// CRC-32C of `bytes`, continuing from `crc`, the CRC-32C of the bytes before them (0 for none):
/// crc32c(b, crc32c(a)) == crc32c(a ‖ b). Same value on every target and path.
inline std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc = 0) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::uint32_t c = ~crc;
#if defined(DECOPT_CRC32C_X86)
  if (detail::crc32c::hardware_available()) return ~detail::crc32c::hardware(c, p, bytes.size());
#endif
  return ~detail::crc32c::portable(c, p, bytes.size());
}

}  // namespace decopt
