// decopt/privacy/clipping.hpp — per-sample clipping rules for differentially private gradients.
//
// A private gradient bounds what any one sample can contribute (its *sensitivity*) before the
// Gaussian mechanism adds noise scaled to that bound. Every rule here maps a per-sample gradient g
// to a term f(‖g‖)·g whose norm never exceeds the rule's clip bound C, so the sum over a batch has
// ℓ2-sensitivity C and N(0, σ²C²I) noise gives the guarantee the RDP accountant computes.
//
// The rules differ in how they treat small and large gradients:
//
//   rule            term                         why
//   AbadiClipping   g·min(1, C/‖g‖)              DP-SGD (Abadi et al., CCS 2016): unbiased for ‖g‖ ≤ C
//   NsgdClipping    C·g/(‖g‖ + r)                normalised SGD (Das et al. 2021; Yang et al. 2022):
//                                                no threshold to tune, every term has norm < C
//   AutoSClipping   C·g/(‖g‖ + γ)                automatic clipping (Bu et al., "Automatic Clipping:
//                                                Differentially Private Deep Learning Made Easier and
//                                                Stronger", 2022), γ = 0.01 stabilises small ‖g‖
//   PsacClipping    C·g/(‖g‖ + r/(‖g‖ + r))      DP-PSAC (Xia et al., "Differentially Private Learning
//                                                with Per-Sample Adaptive Clipping", AAAI 2023,
//                                                arXiv 2212.00328)
//
// PSAC's weight w(n) = 1/(n + r/(n + r)) is non-monotonic: it rises from w(0) = 1 to its peak at
// n = √r − r and falls after, so small gradients are not inflated the way 1/(n + r) inflates them
// (NSGD gives near-zero gradients, which carry little signal, weight up to C/r), while the term
// norm C·n·w(n) = C·n(n + r)/(n(n + r) + r) still rises monotonically to C without reaching it.
#pragma once

#include <cmath>
#include <concepts>
#include <sstream>
#include <string>

#include "decopt/core/error.hpp"

namespace decopt::privacy {

namespace detail {
/// "Rule: name must be a finite number > 0, got value" — the message of every rejected parameter.
inline void require_positive(double value, const char* owner, const char* name) {
  if (std::isfinite(value) && value > 0.0) return;
  std::ostringstream message;
  message << owner << ": " << name << " must be a finite number > 0, got " << value;
  throw ConfigError(message.str());
}
}  // namespace detail

/// What private_gradient needs of a clipping rule: the factor f(‖g‖) that makes the clipped term
/// f·g, the bound C on every term's norm (which sets the noise scale σC), and a name for reports.
/// `factor(0)` must be finite, since a zero gradient is an ordinary input.
template <class Rule>
concept ClippingRule = requires(const Rule& rule, double norm) {
  { rule.factor(norm) } -> std::convertible_to<double>;
  { rule.clip_bound() } -> std::convertible_to<double>;
  { Rule::name } -> std::convertible_to<const char*>;
};

/// DP-SGD clipping (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016):
/// term = g·min(1, C/‖g‖). Leaves gradients inside the ball untouched (so it is unbiased when no
/// sample is clipped) and projects the others onto its surface; terms may reach norm C exactly.
class AbadiClipping {
 public:
  static constexpr const char* name = "abadi";

  /// @param clip_bound C > 0, the largest norm a term may have.
  explicit AbadiClipping(double clip_bound) : clip_bound_(clip_bound) {
    detail::require_positive(clip_bound, "AbadiClipping", "clip_bound");
  }

  /// min(1, C/‖g‖); 1 at ‖g‖ = 0 (the term is then 0 whatever the factor).
  [[nodiscard]] double factor(double norm) const noexcept {
    return norm > clip_bound_ ? clip_bound_ / norm : 1.0;
  }
  [[nodiscard]] double clip_bound() const noexcept { return clip_bound_; }

 private:
  double clip_bound_;
};

/// Normalised-SGD clipping (Das et al. 2021, Yang et al. 2022): term = C·g/(‖g‖ + r).
/// Every gradient is rescaled to just under norm C; r > 0 keeps the factor finite at ‖g‖ = 0.
class NsgdClipping {
 public:
  static constexpr const char* name = "nsgd";

  /// @param clip_bound C > 0.  @param r regulariser r > 0 (the factor at ‖g‖ = 0 is C/r).
  NsgdClipping(double clip_bound, double r) : clip_bound_(clip_bound), r_(r) {
    detail::require_positive(clip_bound, "NsgdClipping", "clip_bound");
    detail::require_positive(r, "NsgdClipping", "r");
  }

  [[nodiscard]] double factor(double norm) const noexcept { return clip_bound_ / (norm + r_); }
  [[nodiscard]] double clip_bound() const noexcept { return clip_bound_; }
  [[nodiscard]] double r() const noexcept { return r_; }

 private:
  double clip_bound_;
  double r_;
};

/// Automatic clipping, AUTO-S (Bu, Wang, Zha & Karypis 2022): term = C·g/(‖g‖ + γ).
/// The same form as NSGD; the paper's point is that with γ = 0.01 the clip bound can be left at 1
/// and folded into the learning rate, removing a hyperparameter.
class AutoSClipping {
 public:
  static constexpr const char* name = "auto-s";

  /// @param clip_bound C > 0.  @param gamma stability constant γ > 0 (paper default 0.01).
  explicit AutoSClipping(double clip_bound, double gamma = 0.01) : clip_bound_(clip_bound), gamma_(gamma) {
    detail::require_positive(clip_bound, "AutoSClipping", "clip_bound");
    detail::require_positive(gamma, "AutoSClipping", "gamma");
  }

  [[nodiscard]] double factor(double norm) const noexcept { return clip_bound_ / (norm + gamma_); }
  [[nodiscard]] double clip_bound() const noexcept { return clip_bound_; }
  [[nodiscard]] double gamma() const noexcept { return gamma_; }

 private:
  double clip_bound_;
  double gamma_;
};

/// DP-PSAC per-sample adaptive clipping (Xia et al., AAAI 2023, arXiv 2212.00328):
/// term = C·g·w(‖g‖) with w(n) = 1/(n + r/(n + r)).
///
/// Term norm C·n/(n + r/(n + r)) < C for every n ≥ 0, so the sensitivity is C. The weight is
/// non-monotonic (peak at n = √r − r for r < 1): unlike NSGD it does not blow tiny gradients up to
/// weight C/r, which the paper shows reduces the deviation of the update from the true gradient.
class PsacClipping {
 public:
  static constexpr const char* name = "psac";

  /// @param clip_bound C > 0.  @param r r > 0 (paper: r ≈ 0.1; w(0) = 1 whatever r).
  explicit PsacClipping(double clip_bound, double r = 0.1) : clip_bound_(clip_bound), r_(r) {
    detail::require_positive(clip_bound, "PsacClipping", "clip_bound");
    detail::require_positive(r, "PsacClipping", "r");
  }

  /// C·w(n); at n = 0 this is C (finite: r/(0 + r) = 1).
  [[nodiscard]] double factor(double norm) const noexcept { return clip_bound_ * weight(norm); }
  /// w(n) = 1/(n + r/(n + r)), the adaptive weight without the clip bound.
  [[nodiscard]] double weight(double norm) const noexcept { return 1.0 / (norm + r_ / (norm + r_)); }
  [[nodiscard]] double clip_bound() const noexcept { return clip_bound_; }
  [[nodiscard]] double r() const noexcept { return r_; }

 private:
  double clip_bound_;
  double r_;
};

}  // namespace decopt::privacy
