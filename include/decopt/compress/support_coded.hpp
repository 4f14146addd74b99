// decopt/compress/support_coded.hpp — sparse models cost fewer bits: the model's support is coded
// as it changes, and the coordinates the prox set to zero are then free.
//
// Why (Malcom-PSGD, Campbell, Liu, Woldemariam & Scaglione, arXiv 2311.05760: compressed and sparse models):
// after the ℓ1 prox many x_k are exactly 0, but the residual there, x_k − x̂_k = −x̂_k, is not: x̂
// carries the quantization error of every earlier round, so a plain compressor keeps paying for
// those coordinates (measured: 49% zeros, the same 1.88 bits/param/round as a dense model).
// SupportCoded<Inner> keeps x̂ exactly 0 wherever x is, and tells the receivers which coordinates
// those are, so that neither side spends a bit on them:
//   S     the announced support, all coordinates at the start (x̂ = 0 satisfies x̂ = 0 off S for
//         any S, so a dense model pays nothing to announce itself); x̂_k = 0 off S
//   D     = S Δ S', the coordinates whose membership changed, in index order, where S' = supp(x)
//           with patience P = 1 (below: S' keeps k ∈ S until x_k = 0 at P consecutive encodes):
//           k ∈ S, x_k = 0  (a leave, a snap)  q_k = −x̂_k exactly, so x̂_k becomes exactly 0;
//                           a flag bit says whether a value is sent: none when x̂_k is already 0
//           k ∉ S, x_k ≠ 0  (an entry)         k joins the live set
//   L     = supp(x): q_L = Inner(x_L − x̂_L) over the compact vector of the |L| live values
//   message = [crc32c of the support part][varint |D|][varint b, if |D| > 0]
//             [bits: |D| Golomb(b) codes of the index gaps (the first index, then gap − 1),
//              one flag bit per leave; zero-padded to a byte][float32 −x̂_k per flagged leave]
//             [Inner's message over |L| values; none when L is empty]
// b is the optimal Golomb parameter for gaps of a geometric source with p = |D|/d (Golomb, "Run-
// length encodings", IEEE T-IT 1966; Gallager & van Voorhis 1975), so a change costs about
// log2(d/|D|) + 1.5 bits instead of a byte-aligned varint; b is sent, so receivers need no
// floating point to agree on it.
// Receivers keep each neighbour's S (a bit per coordinate per neighbour, d/8 bytes each), apply D,
// add w·q_k for the snaps and decode Inner's message into the live coordinates. A round costs the
// changes plus Inner's bits over |L| values: with a zero fraction z, about (1 − z) of the dense
// bits once the support has settled. The snap is exact (x̂_k + (−x̂_k) = 0 in IEEE arithmetic),
// so x̂ is the same number on the sender and in every receiver's s, and s = Σ_j w_ij x̂_j holds as
// for any compressor.
//
// Patience P (set_patience): a coordinate leaves S only after x_k = 0 at P consecutive encodes;
// until then it stays live and Inner codes x_k − x̂_k = −x̂_k like any other value. With P = 1 a
// coordinate leaves at its first zero; a larger P stops the churn of coordinates the prox zeroes
// and the next gradient step revives (each round trip costs two changes and a float32), at the
// price of coding a few zeros. Only the sender decides, and the receivers learn it from D, so x̂
// is still the same number everywhere; the per-coordinate counters are part of save_state.
//
// Levels over the live values (set_level_scaling, on by default). Inner's ℓ2 scale σ = ‖v_L‖₂ is
// the norm of the |L| live values only, so a value's typical level s·|v_k|/σ ≈ s/√|L| grows as the
// support shrinks: with the same s each live value would cost about ½·log2(d/|L|) bits more than
// in a dense model (and be quantized finer than in one). So the sender and every receiver give
// Inner's quantizer
//     s_L = max(1, round(s · √(|L|/d)))
// levels: a live value's typical level is s_L/√|L| ≈ s/√d, the dense model's, and so are its bits.
// Why this is safe:
//   unbiased   E Q(v) = v holds for every level count s_L ≥ 1 (stochastic rounding between two
//              adjacent levels), so SupportCoded stays unbiased;
//   variance   the dithered quantizer's bound min(|L|/s_L², √|L|/s_L)·‖v_L‖₂² is, with s_L² ≈ s²|L|/d,
//              (d/s²)·‖v_L‖₂² in its first form: the bound of the dense model at s levels, for the
//              live part of the residual (the rest is exact: snaps and zeros);
//   identical  s_L is a function of the integers s, |L|, d by the same double operations (IEEE 754
//              division and sqrt are correctly rounded; lround) on every node. The receiver knows
//              |L| before it decodes Inner's message (its copy of S after applying D), and Inner's
//              message carries s_L, which the receiver's Inner checks against its own — so both
//              decode the same levels and x̂ is the same number everywhere, as without scaling.
// Only where one σ covers the message: Inner with an ℓ2 norm, uniform levels, no buckets and no
// scale blocks (a bucket or block has its own σ over its own live values, natural levels are
// exponents, an ℓ∞ σ hardly depends on |L|); otherwise s_L = s. A dense model (|L| = d) keeps s.
//
// Layer-wise scales (set_scale_blocks) are remapped to the compact vector at every encode (each
// block keeps its own norm over its live values). Matrix blocks do not survive compaction:
// SupportCoded has no set_matrix_blocks (low-rank compressors compress dense matrices).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/dithered_quantizer.hpp"
#include "decopt/compress/hooks.hpp"
#include "decopt/core/bit_stream.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/codes.hpp"
#include "decopt/core/crc32c.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

namespace detail {
/// An Inner whose quantizer's level count SupportCoded can scale to the live values
/// (Compressor<S, DitheredQuantizer, C>).
template <class C>
concept ScalableLevels = requires(C& c, const C& cc) {
  c.set_levels(1);
  { cc.quantizer().levels } -> std::convertible_to<int>;
  { cc.quantizer().norm == Norm::L2 } -> std::convertible_to<bool>;
  { cc.quantizer().natural } -> std::convertible_to<bool>;
  { cc.quantizer().bucket } -> std::convertible_to<std::size_t>;
  cc.quantizer().scale_blocks.empty();
};

/// One bit per coordinate.
class Bitmap {
 public:
  Bitmap() = default;
  explicit Bitmap(std::size_t n) : words_((n + 63) / 64, 0) {}
  /// n bits, all set.
  static Bitmap full(std::size_t n) {
    Bitmap b(n);
    for (auto& w : b.words_) w = ~std::uint64_t{0};
    if (n % 64 != 0) b.words_.back() = (std::uint64_t{1} << (n % 64)) - 1;
    return b;
  }
  [[nodiscard]] bool test(std::size_t k) const noexcept { return (words_[k >> 6] >> (k & 63)) & 1; }
  void flip(std::size_t k) noexcept { words_[k >> 6] ^= std::uint64_t{1} << (k & 63); }
  [[nodiscard]] std::size_t count() const noexcept {
    std::size_t c = 0;
    for (std::uint64_t w : words_) c += static_cast<std::size_t>(std::popcount(w));
    return c;
  }
  /// Calls f(k) for every set bit, in increasing k.
  template <class F>
  void for_each_set(F&& f) const {
    for (std::size_t w = 0; w < words_.size(); ++w)
      for (std::uint64_t bits = words_[w]; bits != 0; bits &= bits - 1)
        f(w * 64 + static_cast<std::size_t>(std::countr_zero(bits)));
  }
  [[nodiscard]] std::span<const std::uint64_t> words() const noexcept { return words_; }
  [[nodiscard]] std::span<std::uint64_t> words() noexcept { return words_; }

 private:
  std::vector<std::uint64_t> words_;
};
}  // namespace detail

/**
 * @brief A compressor that codes the model's support, so that coordinates the prox zeroed cost
 *        no bits (header comment).
 * @tparam Inner a ResidualCompressor for the live values, e.g. Compressor<Dense, DitheredQuantizer,
 *         VectorSourceCoder>
 */
template <class Inner>
class SupportCoded {
 public:
  static constexpr bool unbiased = Inner::unbiased;  // snaps are exact, zeros stay zeros
  static constexpr bool lossless = Inner::lossless;

  SupportCoded() = default;
  explicit SupportCoded(Inner inner) : inner_(std::move(inner)) {}

  /// What the last encode_model sent (coordinates counted over the whole vector).
  struct EncodeCounts {
    std::size_t entered = 0;      ///< coordinates that joined the support
    std::size_t left = 0;         ///< coordinates that left it (snaps)
    std::size_t snap_values = 0;  ///< leaves that carried a value (x̂_k was not already 0)
    std::size_t zeros = 0;        ///< coordinates with x_k = 0
    std::size_t live = 0;         ///< |S| after the encode: the values Inner coded
    int levels = 0;               ///< Inner's quantizer levels s_L (0: Inner has no level count)
  };

  static std::string name() { return "Support(" + Inner::name() + ")"; }
  [[nodiscard]] const Inner& inner() const noexcept { return inner_; }

  /// Sizes the support of this node and of each neighbour; every support starts full (every x̂
  /// starts at 0, which is 0 off any support), so a dense model sends no changes.
  void bind_neighbors(std::size_t neighbors, std::size_t d) {
    d_ = d;
    support_ = detail::Bitmap::full(d);
    neighbor_support_.assign(neighbors, detail::Bitmap::full(d));
    zero_rounds_.assign(d, 0);
  }
  void bind_node(int rank, int nodes, std::uint64_t seed) { hooks::bind_node(inner_, rank, nodes, seed); }

  /// A coordinate leaves the support after `rounds` consecutive encodes with x_k = 0 (default 1).
  /// @throws ConfigError unless 1 ≤ rounds ≤ 65535
  void set_patience(unsigned rounds) {
    detail::require(rounds >= 1 && rounds <= 65535, "SupportCoded: patience must be in [1, 65535] rounds");
    patience_ = static_cast<std::uint16_t>(rounds);
  }
  [[nodiscard]] unsigned patience() const noexcept { return patience_; }

  /// Scale Inner's quantizer levels to the live values, s_L = s·√(|L|/d) (header comment; default
  /// on). Sender and receivers must agree: a receiver refuses levels other than its own.
  void set_level_scaling(bool on) noexcept { scale_levels_ = on; }
  [[nodiscard]] bool level_scaling() const noexcept { return scale_levels_; }

  /// Inner's quantizer levels for `live` live values out of the bound d: s_L = max(1, round(s·√(live/d)))
  /// with level scaling and one ℓ2 σ of uniform levels per message, s otherwise; 0 when Inner has
  /// no level count.
  [[nodiscard]] int live_levels(std::size_t live) const {
    if constexpr (detail::ScalableLevels<Inner>) {
      const auto& q = inner_.quantizer();
      if (!scale_levels_ || q.norm != Norm::L2 || q.natural || q.bucket != 0 || !q.scale_blocks.empty() ||
          !scale_blocks_.empty() || live >= d_)
        return base_levels_;
      const double scaled = static_cast<double>(base_levels_) * std::sqrt(static_cast<double>(live) / static_cast<double>(d_));
      return static_cast<int>(std::max(1L, std::lround(scaled)));
    } else {
      return 0;
    }
  }

  /// Layer-wise scales, in coordinates of the whole vector (remapped to the live values per encode).
  void set_scale_blocks(std::span<const ScaleBlock> blocks)
    requires hooks::has_scale_blocks<Inner>
  {
    scale_blocks_.assign(blocks.begin(), blocks.end());
    inner_.set_scale_blocks(blocks);  // validates them
  }

  /// Appends the message for model x with public copy xhat; writes into q the change of x̂.
  /// @throws ConfigError for sizes other than the bound dimension
  void encode_model(std::span<const float> x, std::span<const float> xhat, Rng& rng, std::vector<std::byte>& out,
                    std::span<float> q) {
    detail::require(x.size() == d_ && xhat.size() == d_ && q.size() == d_,
                    "SupportCoded::encode_model: sizes differ from the bound dimension (bind_neighbors)");
    changes_.clear();
    snaps_.clear();
    flags_.clear();
    live_.clear();
    compact_.clear();
    last_ = {};
    for (std::size_t k = 0; k < d_; ++k) {
      const bool announced = support_.test(k);
      const bool nonzero = x[k] != 0.0f;
      last_.zeros += !nonzero;
      std::uint16_t& waited = zero_rounds_[k];
      waited = nonzero ? 0 : static_cast<std::uint16_t>(std::min<unsigned>(waited + 1u, 65535u));
      const bool member = announced ? (nonzero || waited < patience_) : nonzero;
      if (announced != member) {
        changes_.push_back(k);
        if (announced) {
          flags_.push_back(xhat[k] != 0.0f);
          if (flags_.back()) snaps_.push_back(-xhat[k]);
        }
      }
      if (member) {
        live_.push_back(k);
        compact_.push_back(x[k] - xhat[k]);
      }
    }
    last_.left = flags_.size();
    last_.entered = changes_.size() - flags_.size();
    last_.snap_values = snaps_.size();
    last_.live = live_.size();
    last_.levels = live_levels(live_.size());
    const std::size_t start = out.size();
    put_le<std::uint32_t>(out, 0);  // the support part's crc32c, filled in below
    put_varint(out, changes_.size());
    if (!changes_.empty()) {
      const std::uint64_t b = codes::optimal_golomb_parameter(static_cast<double>(changes_.size()) / static_cast<double>(d_));
      put_varint(out, std::min<std::uint64_t>(b, d_));
      const codes::Golomb golomb(std::min<std::uint64_t>(b, d_));
      BitWriter bits(out);
      std::size_t next = 0;  // the smallest index the next change can have
      for (std::size_t k : changes_) {
        golomb.write(bits, k - next);
        next = k + 1;
      }
      for (bool f : flags_) bits.write_bit(f);
      bits.finish();
    }
    for (float v : snaps_) put_le<float>(out, v);
    const std::uint32_t crc = crc32c(std::span<const std::byte>(out).subspan(start + 4));
    for (int b = 0; b < 4; ++b) out[start + static_cast<std::size_t>(b)] = static_cast<std::byte>(crc >> (8 * b));
    compact_q_.assign(live_.size(), 0.0f);
    if (!live_.empty()) {
      remap_scale_blocks();
      use_levels(live_.size());
      inner_.encode(std::span<const float>(compact_), rng, out, std::span<float>(compact_q_));
    }
    std::fill(q.begin(), q.end(), 0.0f);
    std::size_t leave = 0, snap = 0;
    for (std::size_t k : changes_) {
      if (support_.test(k) && flags_[leave++]) q[k] = snaps_[snap++];
      support_.flip(k);
    }
    for (std::size_t j = 0; j < live_.size(); ++j) q[live_[j]] = compact_q_[j];
  }

  /// acc += weight · q of the message of the neighbour in `slot`. Validates the whole message
  /// before changing anything (acc and that neighbour's support). O(B + d) for B bytes.
  /// @throws DecodeError for a malformed, truncated or corrupted message; ConfigError for an
  ///         unbound slot or a non-finite weight
  void decode_add_from(std::size_t slot, std::span<const std::byte> message, float weight, std::span<float> acc) {
    detail::require(slot < neighbor_support_.size(), "SupportCoded::decode_add_from: neighbour slot not bound");
    detail::require(std::isfinite(weight), "SupportCoded::decode_add_from: weight must be finite");
    detail::require_decodable(acc.size() == d_, "message dimension does not match the accumulator");
    detail::Bitmap& support = neighbor_support_[slot];
    ByteReader in(message);
    const auto crc = in.get_le<std::uint32_t>();
    const std::uint64_t count = in.get_varint();
    detail::require_decodable(count <= 8 * in.remaining() && count <= d_,
                              "support changes: more than the message or the dimension holds");
    changes_.clear();
    flags_.clear();
    std::size_t snaps = 0;
    if (count > 0) {
      const std::uint64_t b = in.get_varint();
      detail::require_decodable(b >= 1 && b <= d_, "support changes: Golomb parameter out of range");
      const codes::Golomb golomb(b);
      BitReader bits(in.rest());
      std::uint64_t next = 0;  // the smallest index the next change can have
      for (std::uint64_t c = 0; c < count; ++c) {
        detail::require_decodable(next < d_, "support change: index out of range");
        const std::uint64_t gap = golomb.read(bits, (d_ - next) / b);
        detail::require_decodable(gap < d_ - next, "support change: index out of range");  // no overflow
        changes_.push_back(static_cast<std::size_t>(next + gap));
        next += gap + 1;
      }
      for (std::size_t k : changes_)
        if (support.test(k)) {
          flags_.push_back(bits.read(1) != 0);
          snaps += flags_.back();
        }
      in.skip(bits.byte_position());
    }
    const std::size_t left = flags_.size();
    detail::require_decodable(in.remaining() >= snaps * sizeof(float), "support changes: snap values truncated");
    snaps_.resize(snaps);
    for (float& v : snaps_) {
      v = in.get_le<float>();
      detail::require_decodable(std::isfinite(v), "support changes: a snap value is not finite");
    }
    detail::require_decodable(crc32c(message.subspan(4, in.position() - 4)) == crc, "support part: checksum mismatch");
    const std::size_t live = support.count() + (changes_.size() - left) - left;
    compact_q_.assign(live, 0.0f);
    if (live > 0) {
      use_levels(live);
      inner_.decode_add(in.rest(), weight, std::span<float>(compact_q_));
    } else {
      detail::require_decodable(in.remaining() == 0, "message carries values but the model has no support");
    }
    std::size_t leave = 0, snap = 0;
    for (std::size_t k : changes_) {
      if (support.test(k) && flags_[leave++]) acc[k] += weight * snaps_[snap++];
      support.flip(k);
    }
    std::size_t j = 0;
    support.for_each_set([&](std::size_t k) { acc[k] += compact_q_[j++]; });
  }

  /// After every neighbour's message of a round: s_k = 0 exactly where this node's and every
  /// neighbour's x̂_k are exactly 0 (off every support), clearing the rounding that adding and
  /// snapping left there — so a coordinate the prox zeroed everywhere stays exactly 0 after the
  /// consensus step x += γ(s − x̂). O(d · degree / 64).
  void settle_neighbor_sum(std::span<float> acc) const {
    detail::require(acc.size() == d_, "SupportCoded::settle_neighbor_sum: size differs from the bound dimension");
    const auto own = support_.words();
    for (std::size_t w = 0; w < own.size(); ++w) {
      std::uint64_t live = own[w];
      for (const auto& s : neighbor_support_) live |= s.words()[w];
      for (std::uint64_t dead = ~live; dead != 0; dead &= dead - 1) {
        const std::size_t k = w * 64 + static_cast<std::size_t>(std::countr_zero(dead));
        if (k >= d_) break;
        acc[k] = 0.0f;
      }
    }
  }

  /// The support of this node and of each neighbour, the patience and its per-coordinate
  /// counters, then Inner's state if it has one.
  void save_state(std::vector<std::byte>& out) const {
    put_le<std::uint64_t>(out, d_);
    put_le<std::uint64_t>(out, neighbor_support_.size());
    put_words(out, support_);
    for (const auto& s : neighbor_support_) put_words(out, s);
    put_le<std::uint16_t>(out, patience_);
    for (std::uint16_t w : zero_rounds_) put_le<std::uint16_t>(out, w);
    hooks::save_state(inner_, out);
  }
  /// Reads what save_state wrote; changes nothing when it throws.
  /// @throws DecodeError for malformed bytes; ConfigError for another dimension or neighbour count
  void load_state(ByteReader& in) {
    const auto d = in.get_le<std::uint64_t>();
    const auto neighbors = in.get_le<std::uint64_t>();
    detail::require(d == d_ && neighbors == neighbor_support_.size(),
                    "checkpoint's support coding is for " + std::to_string(d) + " coordinates and " +
                        std::to_string(neighbors) + " neighbours, this node has " + std::to_string(d_) + " and " +
                        std::to_string(neighbor_support_.size()));
    detail::Bitmap support(d_);
    std::vector<detail::Bitmap> neighbor(neighbor_support_.size(), detail::Bitmap(d_));
    get_words(in, support);
    for (auto& s : neighbor) get_words(in, s);
    const auto patience = in.get_le<std::uint16_t>();
    detail::require(patience == patience_, "checkpoint's support coding has patience " + std::to_string(patience) +
                                               ", this node " + std::to_string(patience_));
    std::vector<std::uint16_t> zero_rounds(d_);
    for (std::uint16_t& w : zero_rounds) w = in.get_le<std::uint16_t>();
    Inner inner = inner_;
    hooks::load_state(inner, in);
    support_ = std::move(support);
    neighbor_support_ = std::move(neighbor);
    zero_rounds_ = std::move(zero_rounds);
    inner_ = std::move(inner);
  }

  // ---- a lost node's rejoin (decopt/optimizer/rejoin.hpp) ----

  /// This node restarts with a new x̂ sent raw: its support is full again (any x̂ is 0 off it) and
  /// its patience counters start over.
  void restart_support() {
    support_ = detail::Bitmap::full(d_);
    zero_rounds_.assign(d_, 0);
  }
  /// Neighbour `slot` restarted (restart_support): its support is full again here too.
  void restart_neighbor_support(std::size_t slot) {
    detail::require(slot < neighbor_support_.size(), "SupportCoded: no neighbour slot " + std::to_string(slot));
    neighbor_support_[slot] = detail::Bitmap::full(d_);
  }
  /// Appends this node's announced support, for a neighbour that rejoins and must decode it.
  void put_support(std::vector<std::byte>& out) const { put_words(out, support_); }
  /// Reads a neighbour's put_support into slot `slot`. @throws DecodeError for malformed bytes
  void take_neighbor_support(std::size_t slot, ByteReader& in) {
    detail::require(slot < neighbor_support_.size(), "SupportCoded: no neighbour slot " + std::to_string(slot));
    detail::Bitmap support(d_);
    get_words(in, support);
    neighbor_support_[slot] = std::move(support);
  }

  /// This node's announced support (the coordinates its neighbours consider live).
  [[nodiscard]] const detail::Bitmap& support() const noexcept { return support_; }
  /// What the last encode_model sent.
  [[nodiscard]] const EncodeCounts& last_encode() const noexcept { return last_; }

 private:
  static void put_words(std::vector<std::byte>& out, const detail::Bitmap& b) {
    for (std::uint64_t w : b.words()) put_le<std::uint64_t>(out, w);
  }
  void get_words(ByteReader& in, detail::Bitmap& b) const {
    for (std::uint64_t& w : b.words()) w = in.get_le<std::uint64_t>();
    if (d_ % 64 != 0 && !b.words().empty())
      detail::require_decodable((b.words().back() >> (d_ % 64)) == 0, "checkpoint's support has bits past the dimension");
  }

  /// Gives Inner's quantizer the levels for `live` values (live_levels).
  void use_levels(std::size_t live) {
    if constexpr (detail::ScalableLevels<Inner>) inner_.set_levels(live_levels(live));
  }
  static int levels_of(const Inner& inner) {
    if constexpr (detail::ScalableLevels<Inner>) {
      return inner.quantizer().levels;
    } else {
      return 0;
    }
  }

  /// Each layer-wise scale block, restricted to the live values, in compact coordinates.
  void remap_scale_blocks() {
    if constexpr (hooks::has_scale_blocks<Inner>) {
      if (scale_blocks_.empty()) return;
      compact_blocks_.clear();
      for (const ScaleBlock& b : scale_blocks_) {
        const auto first = std::lower_bound(live_.begin(), live_.end(), b.offset);
        const auto last = std::lower_bound(first, live_.end(), b.offset + b.size);
        if (first != last)
          compact_blocks_.push_back({static_cast<std::size_t>(first - live_.begin()), static_cast<std::size_t>(last - first)});
      }
      inner_.set_scale_blocks(std::span<const ScaleBlock>(compact_blocks_));
    }
  }

  Inner inner_;
  int base_levels_ = levels_of(inner_);  // s, Inner's levels as configured
  bool scale_levels_ = true;
  std::size_t d_ = 0;
  detail::Bitmap support_;
  std::vector<detail::Bitmap> neighbor_support_;
  std::uint16_t patience_ = 1;
  std::vector<std::uint16_t> zero_rounds_;  // consecutive encodes with x_k = 0, saturating
  std::vector<ScaleBlock> scale_blocks_;
  // scratch, reused every round
  EncodeCounts last_;
  std::vector<std::size_t> changes_, live_;
  std::vector<bool> flags_;
  std::vector<float> snaps_, compact_, compact_q_;
  std::vector<ScaleBlock> compact_blocks_;
};

}  // namespace decopt
