// decopt/compress/message.hpp — the frame of every compressed message: a self-describing header
// in front, a checksum behind.
//
//   byte 0–1  magic 0xDC 0x0C          ("decopt compressed")
//   byte 2    format version (2)
//   byte 3    sparsifier id   byte 4  quantizer id   byte 5  coder id
//   varint    dimension d
//   …         sparsifier parameters, quantizer parameters, coder payload (each policy's own)
//   4 bytes   CRC-32C (little-endian) of every byte above, from the magic on
//
// The ids let a receiver reject a message from a differently configured compressor (a "foreign"
// message) instead of misreading it; the dimension guards against decoding into the wrong model;
// the checksum turns a message damaged in transit or in memory into a DecodeError instead of a
// finite wrong value (CRC-32C detects every burst of up to 32 bits and misses other random damage
// with probability 2^−32; it is no defence against a peer that forges a message and recomputes
// it). Version 1 had no checksum.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "decopt/core/bytes.hpp"
#include "decopt/core/crc32c.hpp"
#include "decopt/core/error.hpp"

namespace decopt {

/// Constants and helpers of the compressed-message format.
namespace message {

inline constexpr std::byte magic0{0xDC};
inline constexpr std::byte magic1{0x0C};
inline constexpr std::uint8_t version = 2;
/// Largest dimension a message can describe: positions are 32-bit.
inline constexpr std::uint64_t max_dimension = 0xFFFFFFFEull;
/// Size of the checksum trailer.
inline constexpr std::size_t checksum_bytes = 4;
/// Large payloads are checksummed this many bytes at a time while they are written or read
/// anyway, so the checksum reads them from cache instead of memory.
inline constexpr std::size_t checksum_chunk = 16 * 1024;

/// Policy ids written into the header (one byte each).
namespace ids {
inline constexpr std::uint8_t dense = 1, top_k = 2, random_k = 3, rand_top_k = 4;
inline constexpr std::uint8_t identity = 1, dithered = 2, sign = 3, half = 4;
inline constexpr std::uint8_t raw = 1, elias = 2, vector_source = 3;
}  // namespace ids

/// Appends the fixed header.
inline void write_header(std::vector<std::byte>& out, std::uint8_t sparsifier, std::uint8_t quantizer,
                         std::uint8_t coder, std::uint64_t dimension) {
  out.push_back(magic0);
  out.push_back(magic1);
  out.push_back(static_cast<std::byte>(version));
  out.push_back(static_cast<std::byte>(sparsifier));
  out.push_back(static_cast<std::byte>(quantizer));
  out.push_back(static_cast<std::byte>(coder));
  put_varint(out, dimension);
}

/// Writes the checksum `crc` at `at` (checksum_bytes bytes, little-endian).
inline void store_checksum(std::byte* at, std::uint32_t crc) noexcept {
  if constexpr (std::endian::native == std::endian::big) crc = __builtin_bswap32(crc);
  std::memcpy(at, &crc, sizeof crc);
}

/// Appends the checksum of the message that starts at out[start] and ends at out.end().
inline void append_checksum(std::vector<std::byte>& out, std::size_t start) {
  const std::uint32_t crc = crc32c(std::span<const std::byte>(out).subspan(start));
  out.resize(out.size() + checksum_bytes);
  store_checksum(out.data() + out.size() - checksum_bytes, crc);
}

/// A received message split into its body (the header and the payload) and the checksum it
/// carries. The body is not verified yet: see verify().
struct Envelope {
  std::span<const std::byte> body;
  std::uint32_t checksum = 0;
};

/// Checks the magic and the version, then splits off the checksum. Throws DecodeError for another
/// format or version, or a message too short to hold a header and a checksum.
inline Envelope open(std::span<const std::byte> msg) {
  constexpr std::size_t fixed = 6;  // magic, version, three ids
  if (msg.size() < 3) throw DecodeError("message truncated");
  if (msg[0] != magic0 || msg[1] != magic1) throw DecodeError("not a decopt compressed message (bad magic)");
  if (std::to_integer<std::uint8_t>(msg[2]) != version) throw DecodeError("unsupported compressed-message version");
  if (msg.size() < fixed + 1 + checksum_bytes) throw DecodeError("message truncated");
  std::uint32_t crc;
  std::memcpy(&crc, msg.data() + msg.size() - checksum_bytes, sizeof crc);
  if constexpr (std::endian::native == std::endian::big) crc = __builtin_bswap32(crc);
  return {msg.first(msg.size() - checksum_bytes), crc};
}

/// Throws DecodeError unless `computed`, the CRC-32C of the body, is the checksum it carries.
inline void verify(const Envelope& envelope, std::uint32_t computed) {
  if (computed != envelope.checksum) throw DecodeError("message corrupted (checksum mismatch)");
}
inline void verify(const Envelope& envelope) { verify(envelope, crc32c(envelope.body)); }

/// Reads and checks the header at the start of a body from open(); returns the dimension.
/// Throws DecodeError for another pipeline or a dimension out of range.
inline std::uint64_t read_header(ByteReader& in, std::uint8_t sparsifier, std::uint8_t quantizer, std::uint8_t coder) {
  const auto head = in.get_bytes(6);
  if (std::to_integer<std::uint8_t>(head[3]) != sparsifier || std::to_integer<std::uint8_t>(head[4]) != quantizer ||
      std::to_integer<std::uint8_t>(head[5]) != coder)
    throw DecodeError("message was produced by a different compression pipeline");
  const std::uint64_t d = in.get_varint();
  if (d == 0 || d > max_dimension) throw DecodeError("message dimension out of range");
  return d;
}

}  // namespace message
}  // namespace decopt
