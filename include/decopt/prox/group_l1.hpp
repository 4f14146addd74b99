// decopt/prox/group_l1.hpp — the group-lasso proximal operator (block soft threshold).
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>

#include "decopt/prox/concepts.hpp"

namespace decopt {

/// R(x) = λ Σ_g ‖x_g‖₂ over consecutive groups of `group_size` coordinates (the last group may be
/// shorter): the group lasso (Yuan & Lin, J. R. Stat. Soc. B 2006), which zeroes whole groups —
/// e.g. all weights of one neuron, so a structured-sparse model. Its prox is the block soft
/// threshold (Parikh & Boyd 2014 §6.5.4):
///     prox_{tR}(x)_g = x_g · max(0, 1 − tλ/‖x_g‖₂),
/// which sets x_g to exactly 0 when ‖x_g‖₂ ≤ tλ. Norms are accumulated in double.
struct GroupL1Prox {
  static constexpr bool is_identity = false;
  static constexpr bool promotes_sparsity = true;

  double lambda = 0.0;          ///< λ ≥ 0
  std::size_t group_size = 1;   ///< ≥ 1; group_size 1 is L1Prox

  GroupL1Prox() = default;
  /// ConfigError unless λ is finite and ≥ 0 and group_size ≥ 1.
  GroupL1Prox(double lambda_, std::size_t group_size_) : lambda(lambda_), group_size(group_size_) { validate(); }
  void validate() const {
    detail::require_non_negative(lambda, "GroupL1Prox", "lambda");
    if (group_size < 1) throw ConfigError("GroupL1Prox: group_size must be >= 1 (got 0)");
  }

  /// Block soft threshold of every group, in place; step ≥ 0, step 0 is the identity.
  template <std::floating_point T>
  void apply(std::span<T> x, double step) const {
    validate();
    detail::require_non_negative(step, "GroupL1Prox", "step");
    const double tau = step * lambda;
    if (tau == 0.0) return;
    const std::size_t n = x.size();
    for (std::size_t start = 0; start < n; start += group_size) {
      const std::size_t len = std::min(group_size, n - start);
      T* __restrict g = x.data() + start;
      const double norm = std::sqrt(squared_norm(g, len));
      const T scale = norm <= tau ? T(0) : static_cast<T>(1.0 - tau / norm);
      for (std::size_t k = 0; k < len; ++k) g[k] *= scale;
    }
  }

  /// R(x) = λ Σ_g ‖x_g‖₂.
  template <std::floating_point T>
  [[nodiscard]] double value(std::span<const T> x) const noexcept {
    double sum = 0.0;
    for (std::size_t start = 0; start < x.size(); start += group_size)
      sum += std::sqrt(squared_norm(x.data() + start, std::min(group_size, x.size() - start)));
    return lambda * sum;
  }

 private:
  /// Σ g_k² in double with four independent accumulators (so the loop vectorises without
  /// -ffast-math reassociation).
  template <class T>
  static double squared_norm(const T* g, std::size_t len) noexcept {
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    std::size_t k = 0;
    for (; k + 4 <= len; k += 4)
      for (std::size_t l = 0; l < 4; ++l) {
        const double v = static_cast<double>(g[k + l]);
        acc[l] += v * v;
      }
    for (; k < len; ++k) {
      const double v = static_cast<double>(g[k]);
      acc[0] += v * v;
    }
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
  }
};

}  // namespace decopt
