// decopt/compress/compressor.hpp — Compressor<Sparsifier, Quantizer, Coder>: the compression
// pipeline C(·) of Malcom-PSGD, CHOCO-SGD and D-PSGD (DESIGN.md, "The data path of one round").
//
//   encode:      v ─► select ─► quantize ─► code ─► one self-describing, checksummed message appended to `out`
//   decode_add:  message ─► verify ─► acc += weight · q   touching only the coded coordinates
//
// What receivers decode is exactly q = C(v), bit for bit: encode writes q with the same float
// expressions decode uses (one reconstruction table built from the message's parameters), so
// every node's copy x̂ of a neighbour stays identical to the neighbour's own.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "decopt/compress/concepts.hpp"
#include "decopt/compress/dense.hpp"
#include "decopt/compress/detail/add_sink.hpp"
#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/detail/stream_copy.hpp"
#include "decopt/compress/identity.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/compress/scale_blocks.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/crc32c.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/finite.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

/// A compression pipeline: sparsify, quantize, entropy-code.
///
/// @tparam S a Sparsifier: Dense, TopK, RandomK, RandTopK
/// @tparam Q a Quantizer: Identity, DitheredQuantizer, Sign
/// @tparam C a Coder: RawCoder, EliasCoder, VectorSourceCoder
///
/// Thread safety: encode uses scratch buffers held by the object (one compressor per sender);
/// decode_add is const and uses only local and per-thread scratch state, so it may run
/// concurrently (the vector source coder keeps per thread, for its largest dense message so
/// far, a hit bitmap per frequent symbol: Σ over those symbols of the positions left to it, in
/// bits — ≈ 3 bits per position for ℓ∞-scaled s = 4 levels, at most 32; a refused message
/// releases it).
///
/// Integrity: every message ends with a CRC-32C of all its bytes (message.hpp), so a message
/// damaged in transit is a DecodeError; a receiver also refuses parameters its own policies
/// would not have sent (levels, options, counts), which bounds every count a decoder trusts.
template <class S, class Q, class C>
class Compressor {
  static_assert(Sparsifier<S>, "decopt::Compressor<S, Q, C>: S is not a Sparsifier (it needs static id, always_unbiased, sparse, uses_seed, name(), and members is_unbiased(), validate(), select(v, rng, sel), write_params(sel, out), read_params(in, d, sel)).");
  static_assert(Quantizer<Q>, "decopt::Compressor<S, Q, C>: Q is not a Quantizer (it needs static id, always_unbiased, uses_seed, float_values, name(), and members is_unbiased(), validate(), quantize(x, scale, rng, blk, q), write_params(blk, out), read_params(in, scale, blk)).");
  static_assert(Coder<C>, "decopt::Compressor<S, Q, C>: C is not a Coder (it needs static id, name(), and members encode_levels, encode_positions, decode_levels, decode_positions).");

 public:
  using sparsifier_type = S;
  using quantizer_type = Q;
  using coder_type = C;

  /// E[C(v)] = v for every v (for RandomK see is_unbiased(): its unbiasedness is an option).
  static constexpr bool unbiased = S::always_unbiased && Q::always_unbiased;
  /// C(v) = v exactly (Dense + Identity).
  static constexpr bool lossless = std::is_same_v<S, Dense> && std::is_same_v<Q, Identity>;
  /// Sends a subset of the coordinates.
  static constexpr bool sparse = S::sparse;
  /// encode draws from the Rng: the result depends on the seed (a randomized compressor).
  static constexpr bool uses_seed = S::uses_seed || Q::uses_seed;

  /// Validates the policies' options; throws ConfigError naming the offending parameter.
  Compressor(S sparsifier = {}, Q quantizer = {}, C coder = {})  // NOLINT(google-explicit-constructor)
      : sparsifier_(std::move(sparsifier)), quantizer_(std::move(quantizer)), coder_(std::move(coder)) {
    sparsifier_.validate();
    quantizer_.validate();
    if constexpr (requires { quantizer_.bucket; quantizer_.scale_blocks; }) {
      if constexpr (!std::is_same_v<S, Dense>) {
        detail::require(quantizer_.bucket == 0 && quantizer_.scale_blocks.empty(),
                        "Compressor: quantizer buckets and scale blocks need the Dense sparsifier, not " + S::name() +
                            " (its quantizer sees only the selected values)");
      }
    }
  }

  /// Gives every listed block of coordinates its own quantizer scale σ (layer-wise compression);
  /// the coordinates in no listed block share one σ. Only where the quantizer supports it, so
  /// `requires { c.set_scale_blocks(blocks); }` tells whether a pipeline can.
  /// @param blocks non-empty, non-overlapping [offset, offset + size) ranges (any order); empty
  ///        restores one σ for the whole vector
  /// @throws ConfigError for a sparsifier other than Dense (with a non-empty list), or blocks
  ///         the quantizer refuses (empty, overlapping, combined with a bucket size)
  void set_scale_blocks(std::span<const ScaleBlock> blocks)
    requires requires(Q& q, std::span<const ScaleBlock> b) { q.set_scale_blocks(b); }
  {
    if constexpr (!std::is_same_v<S, Dense>) {
      detail::require(blocks.empty(), "Compressor::set_scale_blocks: per-block scales need the Dense sparsifier, not " +
                                          S::name() + " (its quantizer sees only the selected values)");
    } else {
      quantizer_.set_scale_blocks(blocks);
    }
  }

  /// Sets the quantizer's level count s (SupportCoded scales it to the live values; the message
  /// carries s and a decoder checks it against its own, so both sides must set the same).
  /// @throws ConfigError outside [1, Q::max_levels]
  void set_levels(int s)
    requires requires(Q& q) { q.levels = 1; Q::max_levels; }
  {
    detail::require(s >= 1 && s <= Q::max_levels, "Compressor::set_levels: levels must be in [1, " + std::to_string(Q::max_levels) + "]");
    quantizer_.levels = s;
  }

  /// "Sparsifier+Quantizer+Coder", e.g. "TopK+Dithered+VSC".
  static std::string name() { return S::name() + "+" + Q::name() + "+" + C::name(); }

  /// This instance's unbiasedness (RandomK{…, unbiased = true} is unbiased, the type may not be).
  [[nodiscard]] bool is_unbiased() const noexcept { return sparsifier_.is_unbiased() && quantizer_.is_unbiased(); }

  [[nodiscard]] const S& sparsifier() const noexcept { return sparsifier_; }
  [[nodiscard]] const Q& quantizer() const noexcept { return quantizer_; }
  [[nodiscard]] const C& coder() const noexcept { return coder_; }

  /// Compresses v and appends one message to `out`; writes into q the exact reconstruction
  /// receivers will decode (for a sparse compressor: zero outside the kept coordinates, an O(d)
  /// fill — the three-argument encode avoids it). Throws ConfigError if q.size() != v.size(), v
  /// is empty or longer than message::max_dimension, or v holds a non-finite value (RandomK: a
  /// value it sends); `out` is then unchanged.
  void encode(std::span<const float> v, Rng& rng, std::vector<std::byte>& out, std::span<float> q) {
    detail::require(q.size() == v.size(), "Compressor::encode: q.size() must equal v.size()");
    encode_message(v, rng, out, q);
    if (!sel_.all) {
      std::fill(q.begin(), q.end(), 0.0f);
      for (std::size_t j = 0; j < sel_.k; ++j) q[sel_.indices[j]] = recon_[j];
    }
  }

  /// The same message as encode(v, rng, out, q), with q left in the compressor (reconstruction())
  /// instead of written densely: for a sparse compressor nothing of size d is written, and
  /// RandomK reads only the k values it sends (O(k) in all); Sign + VectorSourceCoder keeps its
  /// sign masks (d/32 bytes) and writes q from them only when reconstruction() is first asked
  /// for (the message alone reads v once). Throws as the four-argument encode.
  void encode(std::span<const float> v, Rng& rng, std::vector<std::byte>& out) {
    if constexpr (!S::sparse) recon_.resize(v.size());
    encode_message(v, rng, out, recon_, true);
  }

  /// The q of the last three-argument encode without its zeros: values[j] is q at positions[j]
  /// (the kept coordinates, ascending but for RandomK, whose are in draw order); positions is
  /// empty when every coordinate is coded, and values is then q whole. Valid until the next
  /// encode (after a four-argument encode, its q is the reconstruction). After Sign + VSC's
  /// three-argument encode the first call writes q (O(d)), so calls on one compressor must not
  /// run concurrently (as its encodes must not).
  struct Reconstruction {
    std::span<const std::uint32_t> positions;
    std::span<const float> values;
  };
  [[nodiscard]] Reconstruction reconstruction() const {
    if constexpr (codes_sign_masks) {
      if (recon_from_masks_) {
        Q::reconstruct(block_, recon_);
        recon_from_masks_ = false;
      }
    }
    if (sel_.all) return {{}, recon_};
    return {std::span<const std::uint32_t>(sel_.indices.data(), sel_.k), std::span<const float>(recon_.data(), sel_.k)};
  }

  /// acc += weight · q for the q the message encodes, touching only its coded coordinates.
  /// Throws DecodeError for a malformed, truncated, corrupted (checksum) or foreign message
  /// (another pipeline, or parameters this configuration would not have sent), a message of
  /// another dimension than acc.size(), or one that would add a non-finite value (then acc may
  /// hold a partial update: discard it). Never reads outside `msg`; whatever the bytes, costs
  /// O(B + d log d) time for a message of B bytes (O(B + d) but for messages of more symbols than
  /// the word decoder takes) and O(d + s) scratch. ConfigError for a non-finite weight.
  void decode_add(std::span<const std::byte> msg, float weight, std::span<float> acc) const {
    detail::require(std::isfinite(weight), "Compressor::decode_add: weight must be finite");
    const message::Envelope envelope = message::open(msg);
    // Levels are added as they are decoded, so their message is verified first (one pass over
    // a few bits per element); float values are verified in the pass that checks them anyway.
    if constexpr (!Q::float_values) message::verify(envelope);
    ByteReader in(envelope.body);
    const std::uint64_t d = message::read_header(in, S::id, Q::id, C::id);
    if (d != acc.size()) throw DecodeError("message dimension does not match the accumulator");
    detail::Selection sel;
    sparsifier_.read_params(in, static_cast<std::size_t>(d), sel);
    detail::LevelBlock block;
    quantizer_.read_params(in, sel.scale, block);
    const detail::CodeShape shape = shape_of(sel, static_cast<std::size_t>(d), false);
    const std::uint32_t* map = sel.implicit ? sel.indices.data() : nullptr;
    if constexpr (Q::float_values) {
      add_floats(envelope, in.position(), shape, map, weight, acc.data());
    } else {
      add_levels(in.rest(), shape, block, map, weight, acc.data());
    }
  }

 private:
  // Both encodes: selects, quantizes and appends the message. The reconstruction goes to `dense`
  // (size d) for a dense selection, to recon_ (size k) for a sparse one; with `defer_masks_q`,
  // a quantizer that gives sign masks leaves it to reconstruction().
  void encode_message(std::span<const float> v, Rng& rng, std::vector<std::byte>& out, std::span<float> dense,
                      bool defer_masks_q = false) {
    recon_from_masks_ = false;
    detail::require(!v.empty() && v.size() <= message::max_dimension,
                    "Compressor::encode: the dimension must be in [1, 2^32 - 2]");
    if constexpr (!input_checked && !sent_values_checked) {
      detail::require(decopt::all_finite(v), detail::non_finite_input);
    }
    const std::size_t d = v.size();
    sparsifier_.select(v, rng, sel_);
    std::span<const float> x = v;
    std::span<float> recon = dense;
    if (!sel_.all) {
      gathered_.resize(sel_.k);
      gather(v.data(), sel_.indices.data(), sel_.k, gathered_.data());
      if constexpr (sent_values_checked) {
        detail::require(decopt::all_finite(std::span<const float>(gathered_)), detail::non_finite_input);
      }
      recon_.resize(sel_.k);
      x = gathered_;
      recon = recon_;
    }
    // A dense selection whose quantizer gives sign masks and whose coder codes them skips the
    // int16 levels (Sign + VectorSourceCoder: the same message from n/32 bytes instead of 2n).
    bool masks = false;
    if constexpr (codes_sign_masks) masks = sel_.all;
    if (masks) {
      if constexpr (codes_sign_masks) {
        quantizer_.quantize_masks(x, sel_.scale, rng, block_, defer_masks_q ? std::span<float>() : recon);
        recon_from_masks_ = defer_masks_q;
      }
    } else {
      quantizer_.quantize(x, sel_.scale, rng, block_, recon);
    }

    const std::size_t start = out.size();
    message::write_header(out, S::id, Q::id, C::id, d);
    sparsifier_.write_params(sel_, out);
    quantizer_.write_params(block_, out);
    const detail::CodeShape shape = shape_of(sel_, d, true);
    if constexpr (codes_sign_masks) {
      if (masks) {
        coder_.encode_sign_masks(d, block_.positive, block_.negative, out);
        message::append_checksum(out, start);
        return;
      }
    }
    if constexpr (Q::float_values) {
      if (shape.explicit_positions) coder_.encode_positions(shape, out);
      append_floats(recon, out, start);
    } else {
      coder_.encode_levels(shape, block_.levels, block_.s, out);
      message::append_checksum(out, start);
    }
  }

  // Appends the float32 values and the message's checksum (the message starts at out[start]).
  // The values are copied and checksummed a chunk at a time, so that the checksum reads each
  // chunk from L1 after the copy brought it in; a payload larger than the caches is copied with
  // non-temporal stores (as memcpy would for one large copy). Measured at 10·2^20 floats this
  // hides the checksum almost entirely behind the copy; checksumming first, or the written
  // bytes, or in one separate pass, costs 10–25% of the encode.
  static void append_floats(std::span<const float> values, std::vector<std::byte>& out, std::size_t start) {
    const std::size_t at = out.size();
    const std::size_t bytes = values.size() * sizeof(float);
    out.resize(at + bytes + message::checksum_bytes);
    std::uint32_t crc = crc32c(std::span<const std::byte>(out.data() + start, at - start));
    const bool stream = bytes >= stream_min_bytes;
    const auto* src = reinterpret_cast<const std::byte*>(values.data());
    for (std::size_t j = 0; j < bytes; j += message::checksum_chunk) {
      const std::size_t count = std::min(message::checksum_chunk, bytes - j);
      std::byte* dst = out.data() + at + j;
      if constexpr (std::endian::native == std::endian::little) {
        if (stream) {
          detail::copy_streaming(dst, src + j, count);
        } else {
          std::memcpy(dst, src + j, count);
        }
        crc = crc32c(std::span<const std::byte>(src + j, count), crc);  // the message's bytes are the floats
      } else {
        for (std::size_t i = 0; i < count; i += 4) {
          std::uint32_t bits;
          std::memcpy(&bits, src + j + i, 4);
          bits = __builtin_bswap32(bits);
          std::memcpy(dst + i, &bits, 4);
        }
        crc = crc32c(std::span<const std::byte>(dst, count), crc);
      }
    }
    if (stream) detail::stream_fence();
    message::store_checksum(out.data() + at + bytes, crc);
  }

  // The float path of decode_add: positions (if explicit) from body[offset…], then the values.
  // The values are checksummed and checked for finiteness a chunk at a time in one pass; acc is
  // touched only once the whole message is verified. Explicit positions are decoded into an
  // uninitialised buffer (no O(k) zero fill per message).
  void add_floats(const message::Envelope& envelope, std::size_t offset, const detail::CodeShape& shape,
                  const std::uint32_t* map, float weight, float* a) const {
    const std::span<const std::byte> payload = envelope.body.subspan(offset);
    std::size_t consumed = 0;
    std::unique_ptr<std::uint32_t[]> positions;
    if (shape.explicit_positions) {
      positions = std::make_unique_for_overwrite<std::uint32_t[]>(shape.k);
      // into the buffer through a pointer: push_back's size update could alias the coder's bit
      // cursor and keep its state in memory through the decode loop
      std::uint32_t* next = positions.get();
      std::uint32_t* const end = next + shape.k;
      bool excess = false;
      consumed = coder_.decode_positions(payload, shape, [&](std::size_t p) {
        if (next == end) [[unlikely]] {
          excess = true;
          return;
        }
        *next++ = static_cast<std::uint32_t>(p);
      });
      if (excess || next != end) throw DecodeError("the coder decoded more or fewer positions than the message's count");
      map = positions.get();
    }
    const std::size_t count = shape.explicit_positions ? shape.k : shape.n;
    if (payload.size() - consumed != count * sizeof(float)) throw DecodeError("float payload has the wrong size");
    const std::byte* values = payload.data() + consumed;
    std::uint32_t crc = crc32c(envelope.body.first(offset + consumed));
    // max |value| as bits (an integer max, which vectorises): every value is finite iff it is
    // below the bits of infinity
    std::uint32_t max_bits = 0;
    constexpr std::size_t chunk = message::checksum_chunk / sizeof(float);
    for (std::size_t j = 0; j < count; j += chunk) {
      const std::size_t stop = std::min(count, j + chunk);
      crc = crc32c(std::span<const std::byte>(values + 4 * j, 4 * (stop - j)), crc);
      for (std::size_t i = j; i < stop; ++i) max_bits = std::max(max_bits, load_bits(values + 4 * i) & 0x7fffffffu);
    }
    message::verify(envelope, crc);
    check_finite(max_bits, weight);
    if (map) {
      for (std::size_t j = 0; j < count; ++j) {
        if (j + scatter_prefetch < count) __builtin_prefetch(a + map[j + scatter_prefetch], 1);
        a[map[j]] += weight * load_float(values + 4 * j);
      }
    } else {
      for (std::size_t j = 0; j < count; ++j) a[j] += weight * load_float(values + 4 * j);
    }
  }

  static void check_finite(std::uint32_t max_bits, float weight) {
    const float max_abs = std::bit_cast<float>(max_bits);
    if (max_bits >= 0x7f800000u || !std::isfinite(max_abs * weight)) throw DecodeError("message holds or yields a non-finite value");
  }

  // The level path of decode_add, over the coder's payload.
  void add_levels(std::span<const std::byte> payload, const detail::CodeShape& shape, const detail::LevelBlock& block,
                  const std::uint32_t* map, float weight, float* a) const {
    if (block.layout.segmented()) {
      add_grouped_levels(payload, shape, block, weight, a);
      return;
    }
    std::vector<float> table;
    block.signed_table(weight, table);
    for (const float t : table)
      if (!std::isfinite(t)) throw DecodeError("weight times the message's scale is not finite");
    const float* wt = table.data() + block.s;
    std::size_t consumed;
    if (map) {
      consumed = coder_.decode_levels(payload, shape, block.s, [&](std::size_t pos, int l) { a[map[pos]] += wt[l]; });
    } else {
      consumed = coder_.decode_levels(payload, shape, block.s, detail::AddSink{a, wt});
    }
    if (consumed != payload.size()) throw DecodeError("trailing bytes after the payload");
  }

  // The level path of a message with a scale per bucket or scale block (Dense only): the levels
  // are decoded into O(d) scratch, then each is added as weight·(σ_g·unit[ℓ]), the product
  // encode formed q with. acc is touched only once the whole payload decoded.
  void add_grouped_levels(std::span<const std::byte> payload, const detail::CodeShape& shape,
                          const detail::LevelBlock& block, float weight, float* a) const {
    if constexpr (!std::is_same_v<S, Dense>) {
      throw DecodeError("scale blocks or buckets in a message of a pipeline with a sparsifier");
    } else {
      block.layout.check_dimension(shape.n);
      if (!std::isfinite(weight * block.layout.max_scale())) throw DecodeError("weight times the message's scale is not finite");
      std::vector<float> unit;
      block.signed_table(1.0f, unit);
      std::vector<std::int16_t> levels(shape.n, 0);
      const std::size_t consumed = coder_.decode_levels(
          payload, shape, block.s, [&](std::size_t pos, int l) { levels[pos] = static_cast<std::int16_t>(l); });
      if (consumed != payload.size()) throw DecodeError("trailing bytes after the payload");
      detail::add_scaled_levels(block.layout, levels, unit.data() + block.s, weight, a);
    }
  }

  // The sparsifier rejects non-finite input in its own pass over v, or Dense hands v itself to a
  // quantizer that does.
  static constexpr bool input_checked = [] {
    if constexpr (requires { S::checks_finite; }) {
      if (S::checks_finite) return true;
    }
    if constexpr (requires { Q::checks_finite; }) return std::is_same_v<S, Dense> && Q::checks_finite;
    return false;
  }();
  // The quantizer can give its levels as sign masks (and q from them), and the coder code them
  // (Sign + VSC).
  static constexpr bool codes_sign_masks =
      requires(const Q& q, C& c, std::span<const float> x, Rng& rng, detail::LevelBlock& blk, std::span<float> out,
               std::vector<std::byte>& bytes) {
        q.quantize_masks(x, 1.0f, rng, blk, out);
        Q::reconstruct(blk, out);
        c.encode_sign_masks(std::size_t{1}, std::span<const std::uint64_t>(blk.positive), std::span<const std::uint64_t>(blk.negative), bytes);
      };
  // The sparsifier reads only the values it sends (RandomK): the compressor checks those alone.
  static constexpr bool sent_values_checked = [] {
    if constexpr (requires { S::checks_sent_values_only; }) return S::checks_sent_values_only;
    return false;
  }();

  static detail::CodeShape shape_of(const detail::Selection& sel, std::size_t d, bool with_positions) {
    detail::CodeShape shape;
    shape.k = sel.k;
    if (sel.all) {
      shape.n = d;
    } else if (sel.implicit) {
      shape.n = sel.k;  // the receiver regenerates the positions; the coder sees k values
    } else {
      shape.n = d;
      shape.explicit_positions = true;
      if (with_positions) shape.positions = sel.indices;
    }
    return shape;
  }
  // out[j] = v[index[j]]: scattered reads (RandomK's draw order, or a sparse selection spread over
  // a v larger than the caches), each prefetched a few ahead so that they overlap
  static void gather(const float* v, const std::uint32_t* index, std::size_t k, float* out) noexcept {
    for (std::size_t j = 0; j < k; ++j) {
      if (j + scatter_prefetch < k) __builtin_prefetch(v + index[j + scatter_prefetch]);
      out[j] = v[index[j]];
    }
  }
  // The scattered reads of encode's gather and the scattered adds of decode_add prefetch this
  // many positions ahead: at 1% of 2^20 floats (lines beyond L2) 48 took TopK's decode_add from
  // 0.62× to 0.46× BM_Memcpy (16 before; best of 8 on the loaded machine); 96 gained nothing more.
  static constexpr std::size_t scatter_prefetch = 48;
  static std::uint32_t load_bits(const std::byte* p) noexcept {
    std::uint32_t bits;
    std::memcpy(&bits, p, 4);
    if constexpr (std::endian::native == std::endian::big) bits = __builtin_bswap32(bits);
    return bits;
  }
  static float load_float(const std::byte* p) noexcept { return std::bit_cast<float>(load_bits(p)); }
  // Float payloads of at least this many bytes (16 MiB, about an L3) are copied with
  // non-temporal stores, like the quantizer's large outputs.
  static constexpr std::size_t stream_min_bytes = std::size_t{1} << 24;

  S sparsifier_;
  Q quantizer_;
  C coder_;
  // scratch reused across encode calls
  detail::Selection sel_;
  detail::LevelBlock block_;
  std::vector<float> gathered_;
  // q of the last three-argument encode (the kept values when sparse); written by
  // reconstruction() from block_'s sign masks while recon_from_masks_ is set
  mutable std::vector<float> recon_;
  mutable bool recon_from_masks_ = false;
};

}  // namespace decopt
