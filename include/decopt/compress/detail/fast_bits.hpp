// decopt/compress/detail/fast_bits.hpp — the Golomb code of the vector source coder, with a
// non-throwing bit cursor for its decode loop. Internal: include "decopt/compress/compress.hpp".
//
// Why not codes::Golomb: that one stores the truncated-binary remainder bit-reversed and reads it
// one bit at a time so the stream is the textbook MSB-first code. Here the remainder's first k−1
// bits are one little-endian field (same lengths, same prefix property), so both directions are a
// single shift and mask; the decode loop also must not throw per element (it flags and the caller
// throws once). Measured ~3× faster on the 10·2^20-element benchmark.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "decopt/compress/detail/word_bits.hpp"
#include "decopt/core/bit_stream.hpp"
#include "decopt/core/codes.hpp"

namespace decopt::detail {

/// Golomb code, parameter b ≥ 1: ⌊n/b⌋ in unary, then n mod b in truncated binary where the
/// remainders below 2^k − b take k − 1 bits (k = ⌈log2 b⌉).
struct GolombCode {
  std::uint64_t b = 1;
  int k = 0;
  std::uint64_t cutoff = 0;
  std::uint64_t reciprocal = 0;  ///< ⌊(2^64 − 1)/b⌋ + 1 for 1 < b < 2^32, else 0

  GolombCode() = default;
  explicit GolombCode(std::uint64_t param) noexcept
      : b(param),
        k(param <= 1 ? 0 : codes::floor_log2(param - 1) + 1),
        cutoff((std::uint64_t{1} << k) - param),
        reciprocal(param > 1 && param < (std::uint64_t{1} << 32) ? ~std::uint64_t{0} / param + 1 : 0) {}

  static std::uint64_t mul_high(std::uint64_t a, std::uint64_t b) noexcept {
    __extension__ using u128 = unsigned __int128;
    return static_cast<std::uint64_t>((static_cast<u128>(a) * b) >> 64);
  }
  /// ⌊n/b⌋ without a division for n, b < 2^32 (Lemire, Kaser & Kurz, "Faster remainder by
  /// direct computation", 2019: exact for all 32-bit n and b).
  [[nodiscard]] std::uint64_t quotient(std::uint64_t n) const noexcept {
    if (b == 1) return n;
    if (reciprocal != 0 && n < (std::uint64_t{1} << 32))
      return mul_high(reciprocal, n);
    return n / b;
  }

  /// The codeword of n as (bits, length) when it fits in 63 bits; false otherwise.
  inline __attribute__((always_inline)) bool codeword(std::uint64_t n, std::uint64_t& code, int& len) const noexcept {
    const std::uint64_t q = quotient(n);
    if (q + static_cast<std::uint64_t>(k) >= 63) return false;
    const std::uint64_t rem = n - q * b;
    code = std::uint64_t{1} << q;
    len = static_cast<int>(q) + 1;
    if (k > 0) {
      if (rem < cutoff) {
        code |= rem << len;
        len += k - 1;
      } else {
        const std::uint64_t x = rem + cutoff;
        code |= ((x >> 1) | ((x & 1u) << (k - 1))) << len;
        len += k;
      }
    }
    return true;
  }

  template <class Writer>
  inline __attribute__((always_inline)) void write(Writer& w, std::uint64_t n) const {
    std::uint64_t code;
    int len;
    if (codeword(n, code, len)) {  // common case: the whole codeword in one write
      w.write(code, len);
      return;
    }
    const std::uint64_t q = quotient(n);
    const std::uint64_t rem = n - q * b;
    w.write_unary(q);
    if (k == 0) return;
    if (rem < cutoff) {
      w.write(rem, k - 1);
    } else {
      const std::uint64_t x = rem + cutoff;  // in [2·cutoff, 2^k): its top k−1 bits are ≥ cutoff
      w.write(x >> 1, k - 1);
      w.write(x & 1u, 1);
    }
  }

  /// Expected code length of a geometric run length P(n) = (1−p)^n p (Gallager & van Voorhis).
  [[nodiscard]] double expected_bits(double p) const noexcept;
};

/// A movable LSB-first bit writer into 64-bit words (one per symbol stream of the vector source
/// coder, several alive at once; BitWriter is tied to one byte vector and not movable).
class WordWriter {
 public:
  void clear() noexcept {
    words_.clear();
    buf_ = 0;
    filled_ = 0;
  }
  inline __attribute__((always_inline)) void write(std::uint64_t value, int nbits) {
    if (nbits == 0) return;
    if (nbits < 64) value &= (std::uint64_t{1} << nbits) - 1;
    buf_ |= value << filled_;
    const int room = 64 - filled_;
    if (nbits < room) {
      filled_ += nbits;
      return;
    }
    words_.push_back(buf_);
    buf_ = nbits == room ? 0 : value >> room;
    filled_ = nbits - room;
  }
  void write_unary(std::uint64_t n) {
    while (n >= 63) {
      write(0, 63);
      n -= 63;
    }
    write(std::uint64_t{1} << n, static_cast<int>(n) + 1);
  }
  /// Replaces the contents with the first `bits` bits of `words` (swapped in, not copied).
  void adopt(std::vector<std::uint64_t>& words, std::uint64_t bits) {
    words.resize(static_cast<std::size_t>((bits + 63) / 64));
    words_.swap(words);
    filled_ = static_cast<int>(bits % 64);
    buf_ = 0;
    if (filled_ != 0) {
      buf_ = words_.back() & ((std::uint64_t{1} << filled_) - 1);
      words_.pop_back();
    }
  }
  [[nodiscard]] std::uint64_t bit_count() const noexcept { return words_.size() * 64 + static_cast<std::uint64_t>(filled_); }
  [[nodiscard]] std::size_t byte_count() const noexcept { return static_cast<std::size_t>((bit_count() + 7) / 8); }
  /// Appends the bytes (little-endian, last byte zero-padded) to `out`.
  void append_to(std::vector<std::byte>& out) const {
    const std::size_t at = out.size();
    out.resize(at + byte_count());
    std::byte* dst = out.data() + at;
    for (std::uint64_t w : words_) {
      if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
      std::memcpy(dst, &w, 8);
      dst += 8;
    }
    for (int i = 0; i < (filled_ + 7) / 8; ++i) *dst++ = static_cast<std::byte>(buf_ >> (8 * i));
  }

 private:
  std::vector<std::uint64_t> words_;
  std::uint64_t buf_ = 0;
  int filled_ = 0;
};

/// Reads LSB-first bits from [data, data + size). Reading past the end yields zero bits and sets
/// `overrun`, so the hot loop never throws and never touches memory outside the span.
class BitCursor {
 public:
  BitCursor() = default;
  BitCursor(const std::byte* data, std::size_t size) noexcept
      : p_(data), end_(data + size), total_bits_(static_cast<std::uint64_t>(size) * 8) {}

  /// True when the stream was corrupt: a unary part too long, or bits read beyond the end.
  [[nodiscard]] bool overrun() const noexcept { return overrun_ || consumed_ > total_bits_; }
  /// Bits consumed so far.
  [[nodiscard]] std::uint64_t position() const noexcept { return consumed_; }

  /// The next n ≤ 56 bits (zero bits past the end) without consuming them.
  inline __attribute__((always_inline)) std::uint64_t peek(int n) noexcept {
    refill();
    return n == 0 ? 0 : buf_ & (~std::uint64_t{0} >> (64 - n));
  }
  /// Consumes n ≤ 56 bits (after a peek of at least n).
  inline __attribute__((always_inline)) void skip(int n) noexcept { consume(n); }
  /// Tops the buffer up to at least 56 bits, for peek_buffered.
  inline __attribute__((always_inline)) void fill() noexcept { refill(); }
  /// The next n bits without a refill: the caller has consumed fewer than 57 − n since fill().
  [[nodiscard]] std::uint64_t peek_buffered(int n) const noexcept { return buf_ & (~std::uint64_t{0} >> (64 - n)); }

  /// Golomb-decodes one value; `max_quotient` bounds the unary part (corrupt input ends there).
  inline __attribute__((always_inline)) std::uint64_t read_golomb(const GolombCode& g, std::uint64_t max_quotient) noexcept {
    std::uint64_t q = 0;
    for (;;) {
      refill();
      if (buf_ != 0) {
        const int z = std::countr_zero(buf_);
        if (z < avail_) {  // bits above avail_ may hold a copy of the next bytes: ignore them
          q += static_cast<std::uint64_t>(z);
          consume(z + 1);
          break;
        }
      }
      q += static_cast<std::uint64_t>(avail_);
      consume(avail_);
      if (q > max_quotient || consumed_ > total_bits_) {
        overrun_ = true;
        return 0;
      }
    }
    if (q > max_quotient) {
      overrun_ = true;
      return 0;
    }
    std::uint64_t rem = 0;
    if (g.k > 0) {
      refill();
      rem = buf_ & ((std::uint64_t{1} << (g.k - 1)) - 1);
      consume(g.k - 1);
      if (rem >= g.cutoff) {
        refill();
        rem = ((rem << 1) | (buf_ & 1u)) - g.cutoff;
        consume(1);
      }
    }
    return q * g.b + rem;
  }

 private:
  // Tops the buffer up to ≥ 56 valid bits (the word path gives 56–63, the tail loop ≥ 57). Past the
  // end, zero bits are supplied; consuming them makes consumed_ exceed total_bits_, which
  // overrun() reports.
  inline __attribute__((always_inline)) void refill() noexcept {
    if (avail_ > 56) return;
    if (end_ - p_ >= 8) [[likely]] {
      std::uint64_t word;
      std::memcpy(&word, p_, 8);
      if constexpr (std::endian::native == std::endian::big) word = __builtin_bswap64(word);
      buf_ |= word << avail_;
      p_ += (63 - avail_) >> 3;
      avail_ |= 56;
      return;
    }
    // the last bytes, inline too: a call would take the cursor's address and keep its state in
    // memory through every decode loop (measured 1.3× slower on sparse position decoding)
    while (avail_ <= 56 && p_ < end_) {
      buf_ |= static_cast<std::uint64_t>(std::to_integer<unsigned>(*p_++)) << avail_;
      avail_ += 8;
    }
    if (avail_ <= 56) avail_ = 64;  // zero padding beyond the end
  }
  inline __attribute__((always_inline)) void consume(int nbits) noexcept {
    buf_ = nbits >= 64 ? 0 : buf_ >> nbits;
    avail_ -= nbits;
    consumed_ += static_cast<std::uint64_t>(nbits);
  }

  const std::byte* p_ = nullptr;
  const std::byte* end_ = nullptr;
  std::uint64_t total_bits_ = 0;
  std::uint64_t consumed_ = 0;
  std::uint64_t buf_ = 0;
  int avail_ = 0;
  bool overrun_ = false;
};

/// Appends bits to a word array, LSB first; writes nothing past `capacity` words (then `full()`
/// says the input asked for more), so bit counts that come from a message cannot overrun it. Has
/// the write/write_unary pair of WordWriter, so GolombCode::write codes into it directly.
class BitmapWriter {
 public:
  BitmapWriter(std::uint64_t* words, std::size_t capacity) noexcept : out_(words), capacity_(capacity) {}
  /// Appends the low `n` bits of `bits`, n < 64 (higher bits must be zero).
  inline __attribute__((always_inline)) void append(std::uint64_t bits, unsigned n) noexcept {
    acc_ |= bits << filled_;
    const unsigned total = filled_ + n;
    if (total >= 64) {
      put(acc_);
      acc_ = (bits >> 1) >> (63 - filled_);  // the bits that did not fit (filled_ > 0 here)
    }
    filled_ = total & 63u;
  }
  void write(std::uint64_t bits, int n) noexcept { append(bits, static_cast<unsigned>(n)); }
  /// n zeros then a one: the unary code of n, and the hit bitmap of a run of n misses.
  void write_unary(std::uint64_t n) noexcept {
    append_zeros(n);
    append(1, 1);
  }
  /// Appends n zero bits, any n.
  void append_zeros(std::uint64_t n) noexcept {
    const std::uint64_t total = filled_ + n;
    if (total >= 64) {
      put(acc_);
      const std::uint64_t words = total / 64;  // the flushed one and words − 1 of zeros
      for (std::uint64_t w = 1; w < words; ++w) {
        if (at_ >= capacity_) {  // corrupt input: count the rest without writing it
          at_ += words - w;
          break;
        }
        put(0);
      }
      acc_ = 0;
    }
    filled_ = static_cast<unsigned>(total & 63u);
  }
  /// Writes the last partial word; returns the number of bits appended in all.
  std::uint64_t finish() noexcept {
    if (filled_ > 0 && at_ < capacity_) out_[at_] = acc_;
    return at_ * 64 + filled_;
  }
  [[nodiscard]] bool full() const noexcept { return at_ * 64 + filled_ > capacity_ * 64; }

 private:
  void put(std::uint64_t word) noexcept {
    if (at_ < capacity_) out_[at_] = word;
    ++at_;
  }

  std::uint64_t* out_;
  std::size_t capacity_;
  std::size_t at_ = 0;
  std::uint64_t acc_ = 0;
  unsigned filled_ = 0;
};

/// Golomb-codes the runs of a hit bitmap: for each set bit of bitmap[0, nbits), the number of
/// clear bits since the previous set bit (or the start). Runs below 64 take their codeword from a
/// table, and in long streams two runs below 32 take their joint codeword from a second one. One
/// chunk of 32 bitmap words per step(), so that two encodes can run interleaved (encode_pair).
class BitmapGolombEncoder {
 public:
  BitmapGolombEncoder(const GolombCode& g, const std::uint64_t* bitmap, std::uint64_t nbits, std::uint64_t hits,
                      std::vector<std::uint64_t>& out)
      : g_(&g), bitmap_(bitmap), words_((nbits + 63) / 64) {
    for (std::uint64_t run = 0; run < short_runs; ++run) {
      int len = 0;
      length_of_[run] = static_cast<std::uint8_t>(g.codeword(run, code_of_[run], len) ? len : 0);
    }
    // Two runs below 2^pair_bits in one lookup, for streams long enough to pay for the table.
    paired_ = hits >= pair_table_size * 8;
    if (paired_) {
      for (std::uint32_t both = 0; both < pair_table_size; ++both) {
        const std::uint32_t first = both & (pair_runs - 1), second = both >> pair_bits;
        const unsigned length = length_of_[first] + length_of_[second];
        const bool fits = length_of_[first] != 0 && length_of_[second] != 0 && length < 64;
        pair_code_[both] = fits ? code_of_[first] | code_of_[second] << length_of_[first] : 0;
        pair_length_[both] = static_cast<std::uint8_t>(fits ? length : 0);
      }
    }
    // Σ runs ≤ nbits, so the unary parts total at most nbits/b + hits bits, the rest (k bits) per hit
    const std::uint64_t bound = nbits / g.b + hits * static_cast<std::uint64_t>(g.k + 1) + 128;
    out.resize(static_cast<std::size_t>(bound / 64 + 2));
    writer_ = BitmapWriter(out.data(), out.size());
  }
  BitmapGolombEncoder(const BitmapGolombEncoder&) = delete;
  BitmapGolombEncoder& operator=(const BitmapGolombEncoder&) = delete;

  /// Codes the next chunk of bitmap words; false when there is none. First the chunk's run
  /// lengths (bits::word_runs, branch-free where AVX-512 VBMI2 is compiled for), then one loop
  /// over them: no branch depends on how the hits fall into words.
  inline __attribute__((always_inline)) bool step() noexcept {
    if (at_ >= words_) return false;
    const std::uint64_t end = std::min<std::uint64_t>(words_, at_ + chunk_words);
    std::size_t count = 0;
    std::uint64_t carry = run_;
    for (; at_ < end; ++at_) count += bits::word_runs(bitmap_[at_], carry, runs_ + count);
    run_ = carry;
    // a local copy: the output words are uint64_t too, so stores through them would otherwise
    // force the writer's state to be reloaded after every codeword
    BitmapWriter w = writer_;
    std::size_t i = 0;
    if (paired_) {
      for (; i + 2 <= count; i += 2) {
        const std::uint32_t first = runs_[i], second = runs_[i + 1];
        if ((first | second) < pair_runs) {
          const std::uint32_t both = first | second << pair_bits;
          if (pair_length_[both] != 0) {
            w.append(pair_code_[both], pair_length_[both]);
            continue;
          }
        }
        code(w, first);
        code(w, second);
      }
    }
    for (; i < count; ++i) code(w, runs_[i]);
    writer_ = w;
    return true;
  }
  inline __attribute__((always_inline)) void code(BitmapWriter& w, std::uint32_t run) const noexcept {
    if (run < short_runs && length_of_[run] != 0) [[likely]] {
      w.append(code_of_[run], length_of_[run]);
    } else {
      w = code_long(w, *g_, run);
    }
  }
  // By value, so that the hot loop's writer never has its address taken (and stays in registers).
  __attribute__((noinline)) static BitmapWriter code_long(BitmapWriter w, const GolombCode& g, std::uint64_t run) noexcept {
    g.write(w, run);
    return w;
  }
  /// The number of bits written (the stream is out[0, bits)).
  std::uint64_t finish() noexcept { return writer_.finish(); }

  /// Runs two encoders to completion, interleaved.
  static void encode_pair(BitmapGolombEncoder& a, BitmapGolombEncoder& b) noexcept {
    while (a.step() & b.step()) {
    }
    while (a.step()) {
    }
    while (b.step()) {
    }
  }

 private:
  static constexpr std::uint64_t short_runs = 64;
  static constexpr std::uint64_t chunk_words = 32;
  static constexpr unsigned pair_bits = 5;
  static constexpr std::uint32_t pair_runs = 1u << pair_bits;
  static constexpr std::uint32_t pair_table_size = pair_runs * pair_runs;
  const GolombCode* g_;
  const std::uint64_t* bitmap_;
  std::uint64_t words_;
  BitmapWriter writer_{nullptr, 0};
  std::uint64_t at_ = 0;
  std::uint64_t run_ = 0;
  std::uint64_t code_of_[short_runs];
  std::uint8_t length_of_[short_runs];
  std::uint32_t runs_[chunk_words * 64 + 64];  // + the slack word_runs writes
  bool paired_ = false;
  std::uint64_t pair_code_[pair_table_size];
  std::uint8_t pair_length_[pair_table_size];
};

/// Decode table of one Golomb code over the next 12 stream bits: the (up to four) whole codewords
/// that start there, as the bit pattern they stand for — each run of v misses then a hit is v
/// zeros then a one — so that one lookup appends several runs to a hit bitmap. Entry: pattern in
/// bits 0…47, its span in bits 48…53, the codewords' total length in bits 54…57, their number in
/// bits 58…60; 0 when the first codeword is longer than 12 bits or spans 48 or more (then read it
/// bit by bit). Built in O(2^12), so worth it for streams of thousands of codewords.
struct GolombTable {
  static constexpr int bits = 12;
  std::vector<std::uint64_t> entry;

  explicit GolombTable(const GolombCode& g) : entry(std::size_t{1} << bits, 0) {
    std::vector<std::uint16_t> first(std::size_t{1} << bits, 0);  // the one codeword at the start
    for (std::uint64_t n = 0; n < 47; ++n) {
      std::uint64_t code;
      int len;
      if (!g.codeword(n, code, len) || len > bits) {
        if (g.quotient(n) >= static_cast<std::uint64_t>(bits)) break;  // every longer n is longer still
        continue;
      }
      for (std::uint64_t high = 0; high < (std::uint64_t{1} << (bits - len)); ++high)
        first[static_cast<std::size_t>(code | (high << len))] = static_cast<std::uint16_t>(n << 4 | static_cast<std::uint64_t>(len));
    }
    for (std::size_t window = 0; window < entry.size(); ++window) {
      std::uint64_t pattern = 0, span = 0, count = 0;
      int pos = 0;
      while (count < 4) {
        const std::uint16_t e = first[window >> pos];  // bits above the window read as zeros…
        const int len = e & 0xf;
        const std::uint64_t v = e >> 4;
        if (e == 0 || len > bits - pos || span + v + 1 > 47) break;  // …so a codeword must end inside it
        pattern |= std::uint64_t{1} << (span + v);
        span += v + 1;
        pos += len;
        ++count;
      }
      if (count > 0) entry[window] = pattern | span << 48 | static_cast<std::uint64_t>(pos) << 54 | count << 58;
    }
  }

  /// One stream's decode into its hit bitmap (v zeros and a one per run).
  struct Job {
    const GolombTable* table;  ///< null: bit by bit
    const GolombCode* code;
    std::uint64_t max_quotient;
    std::uint64_t count;  ///< runs to decode
    BitCursor cursor;
    BitmapWriter out;
    std::uint64_t done = 0;

    /// Up to four runs through the table (while four or more remain, so that no lookup
    /// overshoots the stream), else one bit by bit. False once all runs are decoded.
    inline __attribute__((always_inline)) bool step() noexcept {
      if (done >= count) return false;
      if (table != nullptr && done + 4 <= count) {
        const std::uint64_t e = table->entry[static_cast<std::size_t>(cursor.peek(bits))];
        if (e != 0) {
          take(e);
          return true;
        }
      }
      out.write_unary(cursor.read_golomb(*code, max_quotient));
      ++done;
      return true;
    }

    /// Four table lookups after one refill (each consumes at most 12 of the ≥ 56 bits it
    /// leaves), for a job with a table and at least 16 runs left; false at an entry that needs
    /// the bit-by-bit path (the caller then takes one step()).
    inline __attribute__((always_inline)) bool burst() noexcept {
      cursor.fill();
      for (int i = 0; i < 4; ++i) {
        const std::uint64_t e = table->entry[static_cast<std::size_t>(cursor.peek_buffered(bits))];
        if (e == 0) return false;
        take(e);
      }
      return true;
    }
    /// Applies a non-zero table entry: its pattern to the bitmap, its bits off the stream.
    inline __attribute__((always_inline)) void take(std::uint64_t e) noexcept {
      out.append(e & ((std::uint64_t{1} << 48) - 1), static_cast<unsigned>((e >> 48) & 0x3fu));
      cursor.skip(static_cast<int>((e >> 54) & 0xfu));
      done += e >> 58;
    }
  };

  /// Runs two jobs to completion, interleaved: their serial bit-cursor chains overlap.
  static void run_pair(Job& a, Job& b) noexcept {
    Job x = a, y = b;  // local copies, so that their state stays in registers
    if (x.table != nullptr && y.table != nullptr) {
      while (x.done + 16 <= x.count && y.done + 16 <= y.count) {
        const bool x_whole = x.burst();
        const bool y_whole = y.burst();
        if (!x_whole) x.step();
        if (!y_whole) y.step();
      }
    }
    while (x.step() & y.step()) {
    }
    while (x.step()) {
    }
    while (y.step()) {
    }
    a = x;
    b = y;
  }
};

inline double GolombCode::expected_bits(double p) const noexcept {
  // With q = 1 − p: E⌊n/b⌋ = q^b/(1 − q^b); the remainder is truncated-geometric on [0, b) and
  // takes k − 1 bits when below the cutoff.
  if (!(p < 1.0)) return 1.0;
  const double q = 1.0 - p;
  const double qb = std::pow(q, static_cast<double>(b));
  double bits = qb / (1.0 - qb) + 1.0;
  if (k > 0) bits += static_cast<double>(k) - (1.0 - std::pow(q, static_cast<double>(cutoff))) / (1.0 - qb);
  return bits;
}

}  // namespace decopt::detail
