// decopt/prox/l1.hpp — the ℓ1 proximal operator (soft threshold), Malcom-PSGD's step 7.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>

#include "decopt/prox/concepts.hpp"

namespace decopt {

/// R(x) = λ‖x‖₁. prox_{tR}(x)_k = sign(x_k)·max(|x_k| − tλ, 0) (soft threshold; Donoho 1995,
/// Parikh & Boyd 2014 §6.5.2). Used by Malcom-PSGD (Campbell et al., arXiv 2311.05760) with t = η
/// to keep the models sparse, which the vector source coder then codes cheaply.
struct L1Prox {
  static constexpr bool is_identity = false;
  static constexpr bool promotes_sparsity = true;

  double lambda = 0.0;  ///< λ ≥ 0

  L1Prox() = default;
  /// ConfigError unless λ is finite and ≥ 0.
  explicit L1Prox(double lambda_) : lambda(lambda_) { validate(); }
  void validate() const { detail::require_non_negative(lambda, "L1Prox", "lambda"); }

  /// x ← soft(x, step·λ), in place. step ≥ 0 (ConfigError otherwise); step 0 is the identity.
  template <std::floating_point T>
  void apply(std::span<T> x, double step) const {
    validate();
    detail::require_non_negative(step, "L1Prox", "step");
    const T tau = static_cast<T>(step * lambda);
    T* __restrict p = x.data();
    const std::size_t n = x.size();
    for (std::size_t k = 0; k < n; ++k) p[k] = detail::soft_threshold(p[k], tau);
  }

  /// R(x) = λ Σ|x_k|, accumulated in double.
  template <std::floating_point T>
  [[nodiscard]] double value(std::span<const T> x) const noexcept {
    double sum = 0.0;
    for (T v : x) sum += std::abs(static_cast<double>(v));
    return lambda * sum;
  }
};

}  // namespace decopt
