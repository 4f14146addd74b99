// decopt/optimizer/checkpoint.hpp — the versioned binary format of a saved optimizer state.
//
//   offset  field
//   0       magic "DCPT" (4 bytes), format version (u32)
//   8       payload length (u64), FNV-1a 64 checksum of the payload (u64)
//   24      payload: little-endian fields written by DecentralizedOptimizer::save_state
//           (dimension, rank, topology fingerprint, pipeline name, round, totals, RNG state,
//            x, x̂, s, the local update's state, the Options::momentum state, the layout, the
//            compressor's state: decopt/compress/hooks.hpp)
// Loading checks magic, version, length and checksum before reading anything, so a truncated or
// corrupted file is refused with DecodeError; a state of another dimension, rank, topology or
// pipeline is refused with ConfigError naming which.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"

namespace decopt::checkpoint {

inline constexpr std::uint32_t kMagic = 0x54504344;  // "DCPT" little-endian
// 2: local-update state and parameter layout after x, x̂, s; 3: compressor state; 4: SupportCoded's
// patience and per-coordinate zero-round counters in its compressor state
inline constexpr std::uint32_t kVersion = 4;
inline constexpr std::size_t kHeaderBytes = 24;

inline constexpr std::uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ULL;

/// FNV-1a 64 (Fowler–Noll–Vo) over bytes: cheap, dependency-free, catches accidental corruption.
/// Pass the previous result as `h` to hash a sequence of buffers as one.
inline std::uint64_t fnv1a64(std::span<const std::byte> bytes, std::uint64_t h = kFnvOffsetBasis) noexcept {
  for (std::byte b : bytes) {
    h ^= std::to_integer<std::uint64_t>(b);
    h *= 0x100000001b3ULL;
  }
  return h;
}

/// Starts a framed record in `out`; returns where its payload begins (pass it to end_record).
inline std::size_t begin_record(std::vector<std::byte>& out) {
  put_le<std::uint32_t>(out, kMagic);
  put_le<std::uint32_t>(out, kVersion);
  put_le<std::uint64_t>(out, 0);  // length, patched by end_record
  put_le<std::uint64_t>(out, 0);  // checksum, patched by end_record
  return out.size();
}

/// Patches the length and checksum of the record whose payload starts at `payload_start`.
inline void end_record(std::vector<std::byte>& out, std::size_t payload_start) {
  const std::uint64_t length = out.size() - payload_start;
  const std::uint64_t sum = fnv1a64(std::span<const std::byte>(out).subspan(payload_start));
  std::vector<std::byte> patch;
  put_le<std::uint64_t>(patch, length);
  put_le<std::uint64_t>(patch, sum);
  std::copy(patch.begin(), patch.end(), out.begin() + static_cast<std::ptrdiff_t>(payload_start - 16));
}

/// Verifies the framing of the record at the start of `bytes`; returns its payload and advances
/// `consumed` past the record. Throws DecodeError (bad magic, version, truncation, checksum).
inline std::span<const std::byte> open_record(std::span<const std::byte> bytes, std::size_t& consumed) {
  ByteReader in(bytes);
  if (in.remaining() < kHeaderBytes) throw DecodeError("checkpoint truncated: no header");
  if (in.get_le<std::uint32_t>() != kMagic) throw DecodeError("not a decopt checkpoint (bad magic)");
  const auto version = in.get_le<std::uint32_t>();
  if (version != kVersion)
    throw DecodeError("checkpoint format version " + std::to_string(version) + " is not supported (this build reads " +
                      std::to_string(kVersion) + ")");
  const auto length = in.get_le<std::uint64_t>();
  const auto sum = in.get_le<std::uint64_t>();
  if (length > in.remaining()) throw DecodeError("checkpoint truncated: payload shorter than its header says");
  const auto payload = in.get_bytes(static_cast<std::size_t>(length));
  if (fnv1a64(payload) != sum) throw DecodeError("checkpoint corrupted: checksum mismatch");
  consumed = in.position();
  return payload;
}

/// Appends a length-prefixed float array.
inline void put_floats(std::vector<std::byte>& out, std::span<const float> v) {
  put_le<std::uint64_t>(out, v.size());
  const auto* raw = reinterpret_cast<const std::byte*>(v.data());
  if constexpr (std::endian::native == std::endian::little) {
    out.insert(out.end(), raw, raw + v.size() * sizeof(float));
  } else {
    for (float x : v) put_le<float>(out, x);
  }
}

/// Reads a float array written by put_floats into `dest` (sizes must match).
inline void get_floats(ByteReader& in, std::span<float> dest, const char* what) {
  const auto n = in.get_le<std::uint64_t>();
  if (n != dest.size())
    throw ConfigError(std::string("checkpoint ") + what + " has " + std::to_string(n) + " values, expected " +
                      std::to_string(dest.size()));
  for (float& x : dest) x = in.get_le<float>();
}

/// Appends a length-prefixed double array (little-endian).
inline void put_doubles(std::vector<std::byte>& out, std::span<const double> v) {
  put_le<std::uint64_t>(out, v.size());
  for (double x : v) put_le<double>(out, x);
}

/// Reads a double array written by put_doubles into `dest` (sizes must match).
inline void get_doubles(ByteReader& in, std::span<double> dest, const char* what) {
  const auto n = in.get_le<std::uint64_t>();
  if (n != dest.size())
    throw ConfigError(std::string("checkpoint ") + what + " has " + std::to_string(n) + " values, expected " +
                      std::to_string(dest.size()));
  for (double& x : dest) x = in.get_le<double>();
}

inline void put_string(std::vector<std::byte>& out, const std::string& s) {
  put_varint(out, s.size());
  const auto* raw = reinterpret_cast<const std::byte*>(s.data());
  out.insert(out.end(), raw, raw + s.size());
}
inline std::string get_string(ByteReader& in) {
  const auto n = in.get_varint();
  if (n > in.remaining()) throw DecodeError("checkpoint truncated inside a string");
  const auto bytes = in.get_bytes(static_cast<std::size_t>(n));
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace decopt::checkpoint
