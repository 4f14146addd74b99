// decopt/compress/rand_top_k.hpp — rTop-k: k random coordinates out of the r = oversample·k
// largest.
//
// Barnes, Inan, Isik & Özgür, "rTop-k: A statistical estimation approach to distributed SGD",
// IEEE JSAIT 2020. Randomising inside the top set spreads the selected coordinates over rounds
// while still favouring large entries. Positions are coded explicitly (the receiver does not
// know the top set), so no seed travels with the message.
#pragma once

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/detail/select.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

/// Chooses k = ⌈ratio·d⌉ coordinates uniformly among the r = min(d, ⌈oversample·k⌉) largest |v_i|.
struct RandTopK {
  double ratio = 0.01;     ///< fraction of coordinates sent, in (0, 1]
  double oversample = 4.0; ///< r/k, ≥ 1

  static constexpr std::uint8_t id = message::ids::rand_top_k;
  static constexpr bool always_unbiased = false;
  static constexpr bool sparse = true;
  static constexpr bool uses_seed = true;
  /// select() throws ConfigError for a non-finite input (detail::top_k_indices sees every value).
  static constexpr bool checks_finite = true;
  static std::string name() { return "RandTopK"; }

  [[nodiscard]] bool is_unbiased() const noexcept { return always_unbiased; }
  void validate() const {
    detail::require(ratio > 0.0 && ratio <= 1.0, "RandTopK::ratio must be in (0, 1]");
    detail::require(oversample >= 1.0 && std::isfinite(oversample), "RandTopK::oversample must be finite and >= 1");
  }

  void select(std::span<const float> v, Rng& rng, detail::Selection& sel) const {
    const std::size_t d = v.size();
    sel.all = false;
    sel.implicit = false;
    sel.scale = 1.0f;
    sel.k = detail::count_for_ratio(ratio, d);
    const double r_real = std::ceil(oversample * static_cast<double>(sel.k));
    const std::size_t r = r_real >= static_cast<double>(d) ? d : static_cast<std::size_t>(r_real);
    detail::top_k_indices(v, r, sel.top, sel.scratch);
    detail::random_subset(rng, r, sel.k, sel.picks, sel.bitmap);
    sel.indices.resize(sel.k);
    for (std::size_t j = 0; j < sel.k; ++j) sel.indices[j] = sel.top[sel.picks[j]];
  }
  void write_params(const detail::Selection& sel, std::vector<std::byte>& out) const { put_varint(out, sel.k); }
  /// The count must be the k = ⌈ratio·d⌉ this configuration selects.
  void read_params(ByteReader& in, std::size_t d, detail::Selection& sel) const {
    const std::uint64_t k = in.get_varint();
    if (k != detail::count_for_ratio(ratio, d)) throw DecodeError("RandTopK: selected count is not this configuration's");
    sel.all = false;
    sel.implicit = false;
    sel.k = static_cast<std::size_t>(k);
    sel.scale = 1.0f;
  }
};

}  // namespace decopt
