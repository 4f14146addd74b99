// decopt/core/bit_stream.hpp — bit-level writer and reader with 64-bit buffering.
//
// Bits are packed least-significant first into little-endian bytes: the first bit written is bit
// 0 of the first byte. The writer appends to a caller-owned std::vector<std::byte> (the outgoing
// message), so a message can be built from a header, bit-packed sections and raw bytes without
// copies. The reader never reads past its span: running out of bits throws DecodeError.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "decopt/core/error.hpp"

namespace decopt {

/// Appends bits to a byte vector through a 64-bit accumulator. Call finish() before using the
/// bytes; finish() pads the last byte with zero bits.
class BitWriter {
 public:
  explicit BitWriter(std::vector<std::byte>& out) noexcept : out_(out), start_bytes_(out.size()) {}
  BitWriter(const BitWriter&) = delete;
  BitWriter& operator=(const BitWriter&) = delete;

  /// Writes the low `nbits` bits of `value` (0 ≤ nbits ≤ 64).
  void write(std::uint64_t value, int nbits) {
    if (nbits == 0) return;
    if (nbits < 64) value &= (std::uint64_t{1} << nbits) - 1;
    buffer_ |= value << filled_;  // filled_ < 64 always
    const int room = 64 - filled_;
    if (nbits < room) {
      filled_ += nbits;
      return;
    }
    flush_word();
    buffer_ = (nbits == room) ? 0 : (value >> room);
    filled_ = nbits - room;
  }

  void write_bit(bool bit) { write(bit ? 1u : 0u, 1); }

  /// Unary code of n: n zero bits followed by a one bit.
  void write_unary(std::uint64_t n) {
    while (n >= 63) {
      write(0, 63);
      n -= 63;
    }
    write(std::uint64_t{1} << n, static_cast<int>(n) + 1);
  }

  /// Appends `nbits` bits produced by pack(buffer, filled, dst): it is handed the pending bits
  /// (`filled` < 64 of them in `buffer`) and room at dst for exactly the (filled + nbits)/64
  /// whole little-endian words they complete; it writes those and leaves the remaining bits
  /// pending in buffer and filled (detail::pack_fixed is such a packer).
  template <class Pack>
  void write_words(std::uint64_t nbits, Pack&& pack) {
    const auto words = static_cast<std::size_t>((static_cast<std::uint64_t>(filled_) + nbits) / 64);
    const std::size_t at = out_.size();
    out_.resize(at + 8 * words);
    pack(buffer_, filled_, out_.data() + at);
  }

  /// Total bits written by this writer so far.
  [[nodiscard]] std::uint64_t bit_count() const noexcept {
    return (out_.size() - start_bytes_) * 8 + static_cast<std::uint64_t>(filled_);
  }

  /// Flushes the partial word, padding the last byte with zeros. The writer may not be used after.
  void finish() {
    const int bytes = (filled_ + 7) / 8;
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<std::byte>(buffer_ >> (8 * i)));
    buffer_ = 0;
    filled_ = 0;
  }

 private:
  void flush_word() {
    const std::size_t at = out_.size();
    out_.resize(at + 8);
    const std::uint64_t le = to_little_endian(buffer_);
    std::memcpy(out_.data() + at, &le, 8);
  }
  static std::uint64_t to_little_endian(std::uint64_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) return v;
    else return __builtin_bswap64(v);
  }

  std::vector<std::byte>& out_;
  std::size_t start_bytes_;
  std::uint64_t buffer_ = 0;
  int filled_ = 0;  // number of valid bits in buffer_, always < 64
};

/// Reads bits written by BitWriter from a byte span. Throws DecodeError on reading past the end.
class BitReader {
 public:
  explicit BitReader(std::span<const std::byte> bytes) noexcept
      : data_(bytes.data()), size_(bytes.size()), total_bits_(bytes.size() * 8) {}

  /// Reads `nbits` bits (0 ≤ nbits ≤ 64) as an unsigned value.
  std::uint64_t read(int nbits) {
    if (nbits == 0) return 0;
    ensure(static_cast<std::uint64_t>(nbits));
    if (nbits > 57) {  // split so a single refill always suffices
      const std::uint64_t low = read_unchecked(32);
      return low | (read_unchecked(nbits - 32) << 32);
    }
    return read_unchecked(nbits);
  }

  bool read_bit() { return read(1) != 0; }

  /// Reads a unary code (zeros terminated by a one). Throws if it exceeds `max_value`.
  std::uint64_t read_unary(std::uint64_t max_value) {
    std::uint64_t n = 0;
    for (;;) {
      refill();
      if (available_ == 0) throw DecodeError("bit stream ended inside a unary code");
      const std::uint64_t window = available_ >= 64 ? buffer_ : (buffer_ & ((std::uint64_t{1} << available_) - 1));
      if (window != 0) {
        const int zeros = std::countr_zero(window);
        n += static_cast<std::uint64_t>(zeros);
        if (n > max_value) throw DecodeError("unary code longer than allowed");
        consume(zeros + 1);
        return n;
      }
      n += static_cast<std::uint64_t>(available_);
      if (n > max_value) throw DecodeError("unary code longer than allowed");
      consume(available_);
    }
  }

  /// Bits consumed so far.
  [[nodiscard]] std::uint64_t position() const noexcept { return consumed_; }
  /// Bits left in the span (including padding bits of the last byte).
  [[nodiscard]] std::uint64_t remaining() const noexcept { return total_bits_ - consumed_; }

  /// Byte offset just past the current bit position, rounded up (for reading a byte section after
  /// a bit-packed one).
  [[nodiscard]] std::size_t byte_position() const noexcept { return static_cast<std::size_t>((consumed_ + 7) / 8); }

 private:
  void ensure(std::uint64_t nbits) const {
    if (nbits > total_bits_ - consumed_) throw DecodeError("bit stream truncated");
  }
  // Tops the buffer up to at least 57 valid bits, or to everything that is left.
  void refill() noexcept {
    while (available_ <= 56 && next_byte_ < size_) {
      buffer_ |= static_cast<std::uint64_t>(std::to_integer<unsigned>(data_[next_byte_])) << available_;
      ++next_byte_;
      available_ += 8;
    }
  }
  std::uint64_t read_unchecked(int nbits) noexcept {
    refill();
    const std::uint64_t value = nbits == 64 ? buffer_ : (buffer_ & ((std::uint64_t{1} << nbits) - 1));
    consume(nbits);
    return value;
  }
  void consume(int nbits) noexcept {
    buffer_ = nbits >= 64 ? 0 : (buffer_ >> nbits);
    available_ -= nbits;
    consumed_ += static_cast<std::uint64_t>(nbits);
  }

  const std::byte* data_;
  std::size_t size_;
  std::uint64_t total_bits_;
  std::size_t next_byte_ = 0;
  std::uint64_t buffer_ = 0;
  int available_ = 0;
  std::uint64_t consumed_ = 0;
};

}  // namespace decopt
