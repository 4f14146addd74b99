// decopt/prox/concepts.hpp — the ProximalOperator contract and the helpers the operators share.
//
// A proximal operator for a regulariser R maps x to prox_{tR}(x) = argmin_z R(z) + ‖z − x‖²/(2t),
// in place, with t ≥ 0 the step size the optimizer passes (Malcom-PSGD's step 7 uses t = η, the
// learning rate). See Parikh & Boyd, "Proximal Algorithms", Found. Trends Optim. 2014.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>

#include "decopt/core/error.hpp"

namespace decopt {

/// What DecentralizedOptimizer needs from a Prox policy: in-place `apply(span<float>, step)`,
/// the regulariser value `value(span<const float>)` convertible to double, and two traits:
/// `is_identity` (the optimizer may skip the call) and `promotes_sparsity` (prox output has exact
/// zeros, so sparsity is worth reporting).
template <class P>
concept ProximalOperator = requires(const P& prox, std::span<float> x, std::span<const float> cx, double step) {
  { prox.apply(x, step) } -> std::same_as<void>;
  { prox.value(cx) } -> std::convertible_to<double>;
  { P::is_identity } -> std::convertible_to<bool>;
  { P::promotes_sparsity } -> std::convertible_to<bool>;
};

namespace detail {
/// ConfigError unless value is finite and ≥ 0; the message names the operator and parameter. The
/// message is only built on failure: apply() calls this every round and must not allocate.
inline void require_non_negative(double value, const char* op, const char* parameter) {
  if (std::isfinite(value) && value >= 0.0) [[likely]]
    return;
  throw ConfigError(std::string(op) + ": " + parameter + " must be finite and >= 0 (got " + std::to_string(value) + ")");
}

/// x − clamp(x, −τ, τ) = sign(x)·max(|x| − τ, 0): the soft threshold, written with min/max only so
/// the loop vectorises (no branch, no copysign). Exact: inside the band it returns x − x = +0.
template <class T>
inline T soft_threshold(T x, T tau) noexcept {
  const T clamped = x < -tau ? -tau : (x > tau ? tau : x);
  return x - clamped;
}
}  // namespace detail

}  // namespace decopt
