// decopt/compress/dense.hpp — the Dense sparsifier: keep every coordinate.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "decopt/compress/detail/pipeline.hpp"
#include "decopt/compress/message.hpp"
#include "decopt/core/rng.hpp"

namespace decopt {

/// Keeps all d coordinates; positions cost nothing. Unbiased, deterministic.
struct Dense {
  static constexpr std::uint8_t id = message::ids::dense;
  static constexpr bool always_unbiased = true;
  static constexpr bool sparse = false;
  static constexpr bool uses_seed = false;
  static std::string name() { return "Dense"; }

  [[nodiscard]] bool is_unbiased() const noexcept { return always_unbiased; }
  void validate() const {}

  void select(std::span<const float> v, Rng& /*rng*/, detail::Selection& sel) const {
    sel.all = true;
    sel.implicit = false;
    sel.k = v.size();
    sel.scale = 1.0f;
    sel.indices.clear();
  }
  void write_params(const detail::Selection& /*sel*/, std::vector<std::byte>& /*out*/) const {}
  void read_params(ByteReader& /*in*/, std::size_t d, detail::Selection& sel) const {
    sel.all = true;
    sel.implicit = false;
    sel.k = d;
    sel.scale = 1.0f;
  }
};

}  // namespace decopt
