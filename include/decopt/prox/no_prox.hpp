// decopt/prox/no_prox.hpp — R = 0: the identity proximal operator (plain SGD, CHOCO-SGD, D-PSGD).
#pragma once

#include <concepts>
#include <span>

#include "decopt/prox/concepts.hpp"

namespace decopt {

/// No regulariser: prox_{t·0}(x) = x. `is_identity` lets the optimizer skip the call entirely.
struct NoProx {
  static constexpr bool is_identity = true;
  static constexpr bool promotes_sparsity = false;

  /// No-op (still rejects a negative or non-finite step, like every operator).
  template <std::floating_point T>
  void apply(std::span<T> /*x*/, double step) const {
    detail::require_non_negative(step, "NoProx", "step");
  }
  /// R(x) = 0.
  template <std::floating_point T>
  [[nodiscard]] double value(std::span<const T> /*x*/) const noexcept { return 0.0; }
  void validate() const noexcept {}
};

}  // namespace decopt
