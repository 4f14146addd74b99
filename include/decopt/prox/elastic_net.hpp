// decopt/prox/elastic_net.hpp — the elastic-net proximal operator.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>

#include "decopt/prox/concepts.hpp"

namespace decopt {

/// R(x) = l1‖x‖₁ + (l2/2)‖x‖₂² (Zou & Hastie, "Regularization and variable selection via the
/// elastic net", 2005). Its prox is the soft threshold followed by a shrink:
///     prox_{tR}(x)_k = sign(x_k)·max(|x_k| − t·l1, 0) / (1 + t·l2)
/// (Parikh & Boyd 2014 §6.5.3). l2 = 0 is L1Prox; l1 = 0 is ridge shrinkage x/(1 + t·l2).
struct ElasticNetProx {
  static constexpr bool is_identity = false;
  static constexpr bool promotes_sparsity = true;

  double l1 = 0.0;  ///< ℓ1 weight ≥ 0
  double l2 = 0.0;  ///< ℓ2² weight ≥ 0 (R has l2/2 in front of ‖x‖²)

  ElasticNetProx() = default;
  /// ConfigError unless both weights are finite and ≥ 0.
  ElasticNetProx(double l1_, double l2_) : l1(l1_), l2(l2_) { validate(); }
  void validate() const {
    detail::require_non_negative(l1, "ElasticNetProx", "l1");
    detail::require_non_negative(l2, "ElasticNetProx", "l2");
  }

  /// x ← soft(x, step·l1) / (1 + step·l2), in place; step ≥ 0, step 0 is the identity.
  template <std::floating_point T>
  void apply(std::span<T> x, double step) const {
    validate();
    detail::require_non_negative(step, "ElasticNetProx", "step");
    const T tau = static_cast<T>(step * l1);
    const T shrink = static_cast<T>(1.0 / (1.0 + step * l2));
    T* __restrict p = x.data();
    const std::size_t n = x.size();
    for (std::size_t k = 0; k < n; ++k) p[k] = detail::soft_threshold(p[k], tau) * shrink;
  }

  /// R(x) = l1 Σ|x_k| + (l2/2) Σ x_k², accumulated in double.
  template <std::floating_point T>
  [[nodiscard]] double value(std::span<const T> x) const noexcept {
    double abs_sum = 0.0, sq_sum = 0.0;
    for (T v : x) {
      const double d = static_cast<double>(v);
      abs_sum += std::abs(d);
      sq_sum += d * d;
    }
    return l1 * abs_sum + 0.5 * l2 * sq_sum;
  }
};

}  // namespace decopt
