// decopt/privacy/deviation.hpp — how far a clipping rule moves a batch's update from the true
// batch mean, before any noise.
//
// DP-PSAC (Xia, Shen, Yao, Fu, Xu, Xu & Fu, "Differentially Private Learning with Per-Sample
// Adaptive Clipping", AAAI 2023, arXiv 2212.00328) argues that normalisation (NSGD, Auto-S) puts
// excessive weight on samples with small gradients and so adds a deviation between the update and
// the true batch-averaged gradient, which its non-monotonic weight reduces. This header measures
// that deviation on given per-sample gradients g_1 … g_B:
//
//   u = (1/B) Σ_b f(‖g_b‖)·g_b      the rule's update without noise (private_gradient with σ = 0)
//   m = (1/B) Σ_b g_b               the true batch mean
//
//   absolute  = ‖u − m‖             in the units of the gradient; meaningful for Abadi clipping,
//                                   whose u equals m when no sample is clipped
//   direction = ‖u/‖u‖ − m/‖m‖‖     in [0, 2]: the same after scaling u to the norm of m
//
// Why two numbers: the normalising rules give every term a norm near C whatever ‖g_b‖ is, so
// their ‖u‖ is on the scale of C, not of ‖m‖, and ‖u − m‖ mostly measures that change of scale
// (which the learning rate absorbs: Auto-S's point is that C can be folded into it). The
// direction deviation is the part no learning rate can undo: ‖u·‖m‖/‖u‖ − m‖ / ‖m‖, equal to
// 2 sin(θ/2) for the angle θ between u and m. A zero vector has no direction: its unit vector is
// taken as 0, so the direction deviation is 0 when u = m = 0 and 1 when only one of them is 0.
#pragma once

#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "decopt/core/eigen.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"
#include "decopt/privacy/clipping.hpp"
#include "decopt/privacy/private_gradient.hpp"

DECOPT_AVX512_QUIET_BEGIN
namespace decopt::privacy {

/// The deviation of one rule's noise-free update u from the batch mean m (see the top of the file).
struct ClippingDeviation {
  double absolute = 0.0;     ///< ‖u − m‖
  double direction = 0.0;    ///< ‖u/‖u‖ − m/‖m‖‖ ∈ [0, 2]
  double update_norm = 0.0;  ///< ‖u‖
  double mean_norm = 0.0;    ///< ‖m‖
};

/// m = (1/B) Σ_b g_b into `out`, computed exactly as private_gradient computes a rule's update
/// (one matrix–vector product with weights 1/B in float), so a rule whose factors are all 1 gives
/// u = m bit for bit.
/// @param per_sample d×B, one per-sample gradient per column (B ≥ 1).
/// @param out d floats, overwritten.
/// @throws ConfigError on B = 0 or out.size() ≠ d.
inline void batch_mean(const Eigen::Ref<const Eigen::MatrixXf>& per_sample, std::span<float> out) {
  const Eigen::Index batch = per_sample.cols();
  decopt::detail::require(batch >= 1, "batch_mean: per_sample must have at least one column (batch size B >= 1)");
  decopt::detail::require(static_cast<std::size_t>(per_sample.rows()) == out.size(),
                          "batch_mean: out.size() (" + std::to_string(out.size()) +
                              ") must equal the number of rows of per_sample (" + std::to_string(per_sample.rows()) + ")");
  const Eigen::VectorXf weights = Eigen::VectorXf::Constant(batch, static_cast<float>(1.0 / static_cast<double>(batch)));
  Eigen::Map<Eigen::VectorXf>(out.data(), per_sample.rows()).noalias() = per_sample * weights;
}

namespace detail {
/// ‖x‖ accumulated in double (squared_norm_in_double of private_gradient.hpp).
inline double norm_in_double(std::span<const float> x) noexcept {
  return std::sqrt(squared_norm_in_double(x.data(), x.size()));
}

/// The deviations of u from m, both d floats.
inline ClippingDeviation compare_to_mean(std::span<const float> u, std::span<const float> m) noexcept {
  ClippingDeviation result;
  result.update_norm = norm_in_double(u);
  result.mean_norm = norm_in_double(m);
  const double inv_u = result.update_norm > 0.0 ? 1.0 / result.update_norm : 0.0;
  const double inv_m = result.mean_norm > 0.0 ? 1.0 / result.mean_norm : 0.0;
  double absolute = 0.0;
  double direction = 0.0;
  for (std::size_t k = 0; k < u.size(); ++k) {
    const double a = static_cast<double>(u[k]) - static_cast<double>(m[k]);
    const double b = static_cast<double>(u[k]) * inv_u - static_cast<double>(m[k]) * inv_m;
    absolute += a * a;
    direction += b * b;
  }
  result.absolute = std::sqrt(absolute);
  result.direction = std::sqrt(direction);
  return result;
}
}  // namespace detail

/// The deviation of `rule`'s noise-free update from a batch mean computed beforehand (batch_mean),
/// for comparing several rules on one batch without recomputing m.
///
/// @param per_sample d×B per-sample gradients (B ≥ 1, finite).
/// @param rule the clipping rule.
/// @param mean m = batch_mean(per_sample), d floats.
/// @param update d floats of workspace, overwritten with u.
/// @throws ConfigError on a size mismatch or a non-finite per-sample gradient (private_gradient's errors).
template <ClippingRule Rule>
ClippingDeviation clipping_deviation(const Eigen::Ref<const Eigen::MatrixXf>& per_sample, const Rule& rule,
                                     std::span<const float> mean, std::span<float> update) {
  decopt::detail::require(mean.size() == update.size(),
                          "clipping_deviation: mean and update must both have d = " + std::to_string(update.size()) +
                              " floats, mean has " + std::to_string(mean.size()));
  Rng unused(0);  // σ = 0: private_gradient draws no noise
  (void)private_gradient_with_stats(per_sample, rule, 0.0, unused, update);
  return detail::compare_to_mean(update, mean);
}

/// The deviation of `rule`'s noise-free update u = (1/B) Σ_b f(‖g_b‖)·g_b from the batch mean.
/// @throws ConfigError on an empty batch or a non-finite per-sample gradient.
template <ClippingRule Rule>
ClippingDeviation clipping_deviation(const Eigen::Ref<const Eigen::MatrixXf>& per_sample, const Rule& rule) {
  std::vector<float> mean(static_cast<std::size_t>(per_sample.rows()));
  std::vector<float> update(mean.size());
  batch_mean(per_sample, mean);
  return clipping_deviation(per_sample, rule, mean, update);
}

}  // namespace decopt::privacy
DECOPT_AVX512_QUIET_END
