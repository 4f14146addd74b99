// decopt/parameters/segmented_prox.hpp — a proximal operator applied only to some tensors of a
// flat buffer: ℓ1 on the weights, not on the biases and norm scales.
//
// For a layout with prox segments S, other segments N and padding P, SegmentedProx<Inner> is the
// proximal operator of
//     R(x) = Σ_{s ∈ S} R_inner(x_s) + ι{x_P = 0}
// (ι the indicator: 0 when every padding float is zero, +∞ otherwise). The sum is separable, so
// its prox acts block by block (Parikh & Boyd, "Proximal Algorithms", 2014, §2.1):
//     x_s ← prox_{tR_inner}(x_s) for s ∈ S,    x_n unchanged for n ∈ N,    x_P ← 0.
// The inner operator is applied to each segment separately, so GroupL1Prox's groups restart at
// every segment. Zeroing the padding keeps the layout's invariant (padding is always zero) even
// when it has drifted; value() reports Σ R_inner(x_s), the part a feasible x pays.
#pragma once

#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/parameters/layout.hpp"
#include "decopt/prox/concepts.hpp"

namespace decopt {

/**
 * @brief Applies an inner proximal operator to the prox = true segments of a ParameterLayout only.
 *
 * Satisfies ProximalOperator (and the optimizer's ProximalPolicy), so it plugs into
 * DecentralizedOptimizer in place of the inner operator: `SegmentedProx<L1Prox>(layout, L1Prox{1e-4})`.
 * @tparam Inner  a ProximalOperator, e.g. L1Prox, ElasticNetProx, GroupL1Prox
 */
template <class Inner>
class SegmentedProx {
  static_assert(
      ProximalOperator<Inner>,
      "decopt: SegmentedProx's inner operator needs apply(span<float>, double) const, value(span<const "
      "float>) const and the traits `is_identity` and `promotes_sparsity`");

 public:
  /// Never the identity: even around NoProx it zeroes the padding.
  static constexpr bool is_identity = false;
  static constexpr bool promotes_sparsity = Inner::promotes_sparsity;

  /**
   * @param layout  the buffer's layout; only the positions are kept (the layout need not outlive this)
   * @param inner   the operator applied to each prox segment
   */
  explicit SegmentedProx(const ParameterLayout& layout, Inner inner = {})
      : inner_(std::move(inner)), size_(layout.size()) {
    for (const Segment& s : layout.segments())
      if (s.options.prox) prox_segments_.push_back({s.offset, s.size});
    layout.for_each_padding([&](std::size_t begin, std::size_t end) {
      padding_.push_back({begin, end - begin});
    });
  }

  /// x ← prox_{step·R}(x) in place (see the header comment).
  /// @throws ConfigError for a buffer of another size than the layout's, or a negative or non-finite step
  template <std::floating_point T>
  void apply(std::span<T> x, double step) const {
    require_size(x.size());
    detail::require_non_negative(step, "SegmentedProx", "step");
    for (const Range& r : prox_segments_) inner_.apply(x.subspan(r.offset, r.size), step);
    for (const Range& r : padding_)
      for (T& v : x.subspan(r.offset, r.size)) v = T(0);
  }

  /// R(x) = Σ over prox segments of the inner regulariser. @throws ConfigError for a buffer of another size
  template <std::floating_point T>
  [[nodiscard]] double value(std::span<const T> x) const {
    require_size(x.size());
    double sum = 0.0;
    for (const Range& r : prox_segments_) sum += inner_.value(x.subspan(r.offset, r.size));
    return sum;
  }

  void validate() const {
    if constexpr (requires { inner_.validate(); }) inner_.validate();
  }

  [[nodiscard]] const Inner& inner() const noexcept { return inner_; }
  /// Floats of the buffers this operator accepts (the layout's size()).
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  struct Range {
    std::size_t offset;
    std::size_t size;
  };

  void require_size(std::size_t n) const {
    if (n != size_) [[unlikely]]
      throw ConfigError("SegmentedProx: buffer of " + std::to_string(n) + " floats, the layout has " +
                        std::to_string(size_));
  }

  Inner inner_;
  std::size_t size_;
  std::vector<Range> prox_segments_;
  std::vector<Range> padding_;
};

}  // namespace decopt
