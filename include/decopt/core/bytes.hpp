// decopt/core/bytes.hpp — byte-level serialisation: little-endian fixed-width values and LEB128
// varints, appended to a std::vector<std::byte> and read back through a bounds-checked ByteReader.
// Used for message headers and checkpoints; the bit-packed payloads use bit_stream.hpp.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "decopt/core/error.hpp"

namespace decopt {

/// Appends `value` in little-endian byte order (integers and IEEE floats).
template <class T>
  requires std::is_arithmetic_v<T>
void put_le(std::vector<std::byte>& out, T value) {
  std::byte raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  if constexpr (std::endian::native == std::endian::big) std::reverse(raw, raw + sizeof(T));
  out.insert(out.end(), raw, raw + sizeof(T));
}

/// Appends an unsigned LEB128 varint (7 bits per byte, high bit = more).
inline void put_varint(std::vector<std::byte>& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<std::byte>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<std::byte>(value));
}

/// Bytes a varint of `value` takes.
constexpr int varint_size(std::uint64_t value) noexcept {
  int n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

/// Reads values written by put_le / put_varint; every read is bounds-checked (DecodeError).
class ByteReader {
 public:
  explicit ByteReader(std::span<const std::byte> bytes) noexcept : bytes_(bytes) {}

  template <class T>
    requires std::is_arithmetic_v<T>
  T get_le() {
    need(sizeof(T));
    std::byte raw[sizeof(T)];
    std::memcpy(raw, bytes_.data() + pos_, sizeof(T));
    if constexpr (std::endian::native == std::endian::big) std::reverse(raw, raw + sizeof(T));
    pos_ += sizeof(T);
    T value;
    std::memcpy(&value, raw, sizeof(T));
    return value;
  }

  std::uint64_t get_varint() {
    std::uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1);
      const auto byte = std::to_integer<std::uint64_t>(bytes_[pos_++]);
      if (shift == 63 && byte > 1) throw DecodeError("varint overflows 64 bits");
      value |= (byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    throw DecodeError("varint longer than 10 bytes");
  }

  /// The next n bytes as a span, advancing past them.
  std::span<const std::byte> get_bytes(std::size_t n) {
    need(n);
    auto s = bytes_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

  /// Everything not read yet.
  [[nodiscard]] std::span<const std::byte> rest() const noexcept { return bytes_.subspan(pos_); }
  [[nodiscard]] std::size_t position() const noexcept { return pos_; }
  [[nodiscard]] std::size_t remaining() const noexcept { return bytes_.size() - pos_; }
  void skip(std::size_t n) {
    need(n);
    pos_ += n;
  }

 private:
  void need(std::size_t n) const {
    if (n > bytes_.size() - pos_) throw DecodeError("message truncated");
  }
  std::span<const std::byte> bytes_;
  std::size_t pos_ = 0;
};

}  // namespace decopt
