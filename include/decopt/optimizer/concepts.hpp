// decopt/optimizer/concepts.hpp — the contracts the optimizer's policies and callbacks must meet.
// Each concept is checked with a static_assert whose message says, in one sentence, what is missing.
#pragma once

#include <concepts>
#include <limits>
#include <cstddef>
#include <span>
#include <type_traits>
#include <vector>

#include "decopt/core/rng.hpp"

namespace decopt {

/// A message compressor: encode a residual into bytes (and its exact reconstruction), decode and
/// accumulate a neighbour's message. See decopt/compress/compressor.hpp.
template <class C>
concept ResidualCompressor = requires(C& c, const C& cc, std::span<const float> v, Rng& rng,
                                      std::vector<std::byte>& out, std::span<float> q,
                                      std::span<const std::byte> message, float weight) {
  c.encode(v, rng, out, q);
  cc.decode_add(message, weight, q);
  { C::unbiased } -> std::convertible_to<bool>;
  { C::lossless } -> std::convertible_to<bool>;
};

/// A proximal operator: prox_{step·R}(x) in place, and the value R(x) of its regulariser.
template <class P>
concept ProximalPolicy = requires(const P& p, std::span<float> x, std::span<const float> cx, double step) {
  p.apply(x, step);
  { p.value(cx) } -> std::convertible_to<double>;
};

/// The user's gradient callback: writes ∇f_i(x) into g; may return the mini-batch loss.
template <class F>
concept GradientFunction = std::invocable<F&, std::span<const float>, std::span<float>>;

/// Calls a GradientFunction and returns its loss, or NaN when it returns nothing.
template <GradientFunction F>
double call_gradient(F& f, std::span<const float> x, std::span<float> g) {
  using R = std::invoke_result_t<F&, std::span<const float>, std::span<float>>;
  if constexpr (std::is_convertible_v<R, double>) {
    return static_cast<double>(f(x, g));
  } else {
    f(x, g);
    return std::numeric_limits<double>::quiet_NaN();
  }
}

}  // namespace decopt
