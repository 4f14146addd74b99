// decopt/compress/top_k.hpp — TopK: the ⌈ρd⌉ coordinates of largest magnitude.
//
// Top-k sparsification (Stich, Cordonnier & Jaggi, "Sparsified SGD with memory", NeurIPS 2018;
// Alistarh et al. 2018). Biased, so an optimizer must pair it with error feedback (the residual
// x − x̂ of Malcom-PSGD/CHOCO is exactly that). The selection is exact and deterministic: ties in
// |v_i| are broken by lower index, so every run and every platform picks the same set.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/detail/select.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

/// Keeps the k = ⌈ratio·d⌉ largest |v_i| (exact; ties → lower index). O(d) sampling select.
struct TopK {
  double ratio = 0.01;  ///< fraction of coordinates kept, in (0, 1]

  static constexpr std::uint8_t id = message::ids::top_k;
  static constexpr bool always_unbiased = false;
  static constexpr bool sparse = true;
  static constexpr bool uses_seed = false;
  /// select() throws ConfigError for a non-finite input (detail::top_k_indices sees every value).
  static constexpr bool checks_finite = true;
  static std::string name() { return "TopK"; }

  [[nodiscard]] bool is_unbiased() const noexcept { return always_unbiased; }
  void validate() const { detail::require(ratio > 0.0 && ratio <= 1.0, "TopK::ratio must be in (0, 1]"); }

  void select(std::span<const float> v, Rng& /*rng*/, detail::Selection& sel) const {
    sel.all = false;
    sel.implicit = false;
    sel.scale = 1.0f;
    sel.k = detail::count_for_ratio(ratio, v.size());
    detail::top_k_indices(v, sel.k, sel.indices, sel.scratch);
  }
  void write_params(const detail::Selection& sel, std::vector<std::byte>& out) const { put_varint(out, sel.k); }
  /// The count must be the k = ⌈ratio·d⌉ this configuration selects.
  void read_params(ByteReader& in, std::size_t d, detail::Selection& sel) const {
    const std::uint64_t k = in.get_varint();
    if (k != detail::count_for_ratio(ratio, d)) throw DecodeError("TopK: selected count is not this configuration's");
    sel.all = false;
    sel.implicit = false;
    sel.k = static_cast<std::size_t>(k);
    sel.scale = 1.0f;
  }
};

}  // namespace decopt
