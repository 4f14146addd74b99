// decopt/compress/random_k.hpp — RandomK: a uniformly random subset of ⌈ρd⌉ coordinates.
//
// Random sparsification (Stich et al. 2018; Wangni et al., NeurIPS 2018). The sender draws a
// 64-bit seed from its Rng and puts it in the message; the receiver regenerates the same subset
// from it, so positions cost 64 bits in total instead of ~k·log2(d/k). With `unbiased`, every
// kept value is multiplied by d/k so that E[C(v)] = v (variance grows by d/k − 1).
//
// Encode and decode cost O(k), not O(d): the subset is drawn by Floyd's algorithm against a
// per-thread bitmap that is never zeroed or scanned whole (detail::random_subset_unordered), the
// positions stay in the order they were drawn (the receiver draws the same order), and only the k
// kept values of v are read — so a non-finite value at a coordinate RandomK does not send is not
// an error (the Compressor checks the values it sends; the optimizer checks its model anyway).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/detail/select.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

/// Keeps k = ⌈ratio·d⌉ coordinates chosen uniformly from a seed carried in the message; scaled by
/// d/k when `unbiased`.
struct RandomK {
  double ratio = 0.01;    ///< fraction of coordinates sent, in (0, 1]
  bool unbiased = false;  ///< multiply kept values by d/k (E[C(v)] = v)

  static constexpr std::uint8_t id = message::ids::random_k;
  // The type-level trait is conservative: an instance is unbiased only with `unbiased = true`.
  static constexpr bool always_unbiased = false;
  static constexpr bool sparse = true;
  static constexpr bool uses_seed = true;
  /// The Compressor checks only the k values it sends for finiteness (see the header comment).
  static constexpr bool checks_sent_values_only = true;
  static std::string name() { return "RandomK"; }

  void validate() const { detail::require(ratio > 0.0 && ratio <= 1.0, "RandomK::ratio must be in (0, 1]"); }
  [[nodiscard]] bool is_unbiased() const noexcept { return unbiased; }

  /// The factor d/k applied when unbiased, identical on both sides.
  static float scale_for(std::size_t d, std::size_t k) noexcept {
    return static_cast<float>(static_cast<double>(d) / static_cast<double>(k));
  }

  void select(std::span<const float> v, Rng& rng, detail::Selection& sel) const {
    const std::size_t d = v.size();
    sel.all = false;
    sel.implicit = true;
    sel.k = detail::count_for_ratio(ratio, d);
    sel.scale = unbiased ? scale_for(d, sel.k) : 1.0f;
    sel.seed = rng.next();
    Rng subset(sel.seed);
    detail::random_subset_unordered(subset, d, sel.k, sel.indices);
  }
  void write_params(const detail::Selection& sel, std::vector<std::byte>& out) const {
    put_varint(out, sel.k);
    put_le<std::uint64_t>(out, sel.seed);
    out.push_back(static_cast<std::byte>(unbiased ? 1 : 0));
  }
  /// The count must be the k = ⌈ratio·d⌉ this configuration selects, the flag its `unbiased`.
  void read_params(ByteReader& in, std::size_t d, detail::Selection& sel) const {
    const std::uint64_t k = in.get_varint();
    if (k != detail::count_for_ratio(ratio, d)) throw DecodeError("RandomK: selected count is not this configuration's");
    sel.seed = in.get_le<std::uint64_t>();
    const auto flag = in.get_le<std::uint8_t>();
    if (flag != (unbiased ? 1 : 0)) throw DecodeError("RandomK: unbiased flag is not this configuration's");
    sel.all = false;
    sel.implicit = true;
    sel.k = static_cast<std::size_t>(k);
    sel.scale = flag ? scale_for(d, sel.k) : 1.0f;
    Rng subset(sel.seed);
    detail::random_subset_unordered(subset, d, sel.k, sel.indices);
  }
};

}  // namespace decopt
