// decopt/compress/message.hpp — the self-describing header every compressed message starts with.
//
//   byte 0–1  magic 0xDC 0x0C          ("decopt compressed")
//   byte 2    format version (1)
//   byte 3    sparsifier id   byte 4  quantizer id   byte 5  coder id
//   varint    dimension d
//   …         sparsifier parameters, quantizer parameters, coder payload (each policy's own)
//
// The ids let a receiver reject a message from a differently configured compressor (a "foreign"
// message) instead of misreading it; the dimension guards against decoding into the wrong model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"

namespace decopt {

/// Constants and helpers of the compressed-message format.
namespace message {

inline constexpr std::byte magic0{0xDC};
inline constexpr std::byte magic1{0x0C};
inline constexpr std::uint8_t version = 1;
/// Largest dimension a message can describe: positions are 32-bit.
inline constexpr std::uint64_t max_dimension = 0xFFFFFFFEull;

/// Policy ids written into the header (one byte each).
namespace ids {
inline constexpr std::uint8_t dense = 1, top_k = 2, random_k = 3, rand_top_k = 4;
inline constexpr std::uint8_t identity = 1, dithered = 2, sign = 3;
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

/// Reads and checks the header; returns the dimension. Throws DecodeError for another format,
/// version or pipeline.
inline std::uint64_t read_header(ByteReader& in, std::uint8_t sparsifier, std::uint8_t quantizer, std::uint8_t coder) {
  const auto head = in.get_bytes(6);
  if (head[0] != magic0 || head[1] != magic1) throw DecodeError("not a decopt compressed message (bad magic)");
  if (std::to_integer<std::uint8_t>(head[2]) != version) throw DecodeError("unsupported compressed-message version");
  if (std::to_integer<std::uint8_t>(head[3]) != sparsifier || std::to_integer<std::uint8_t>(head[4]) != quantizer ||
      std::to_integer<std::uint8_t>(head[5]) != coder)
    throw DecodeError("message was produced by a different compression pipeline");
  const std::uint64_t d = in.get_varint();
  if (d == 0 || d > max_dimension) throw DecodeError("message dimension out of range");
  return d;
}

}  // namespace message
}  // namespace decopt
