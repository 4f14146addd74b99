// decopt/privacy/private_gradient.hpp — one differentially private mini-batch gradient.
//
//   g̃ = ( Σ_b f(‖g_b‖)·g_b + N(0, σ²C²I) ) / B
//
// with f a ClippingRule (clipping.hpp) whose terms have norm ≤ C. This is the update of DP-SGD
// (Abadi et al. 2016) and, with PsacClipping, of DP-PSAC (Xia et al., AAAI 2023). Each call is one
// application of the subsampled Gaussian mechanism: account for it with
// RdpAccountant::step(σ, q) where q is the probability that a sample is in the batch.
//
// Two passes over the d×B per-sample matrix, which cannot be fused since every factor depends on
// a whole column's norm: norms (accumulated in double, so no finite float column overflows and a
// non-finite norm means a non-finite entry), then one matrix–vector product with the factors.
// The d normal draws of the noise cost more than both passes together (see bench_privacy).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "decopt/core/eigen.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"
#include "decopt/privacy/clipping.hpp"
#include "decopt/privacy/gaussian_mechanism.hpp"

DECOPT_AVX512_QUIET_BEGIN
namespace decopt::privacy {

namespace detail {
/// Σ x_k² accumulated in double over contiguous floats. Double because the clip factor must see
/// the true norm (a norm rounded low would let a term exceed C) and because no finite float
/// vector can overflow it, so a non-finite result means a non-finite entry. Eight independent
/// accumulators let the compiler vectorise the float→double widening (Eigen's
/// `cast<double>().squaredNorm()` is about 4× slower here).
inline double squared_norm_in_double(const float* x, std::size_t n) noexcept {
  std::array<double, 8> acc{};
  const std::size_t body = n - n % acc.size();
  for (std::size_t k = 0; k < body; k += acc.size()) {
    for (std::size_t j = 0; j < acc.size(); ++j) {
      const double a = x[k + j];
      acc[j] += a * a;
    }
  }
  double tail = 0.0;
  for (std::size_t k = body; k < n; ++k) {
    const double a = x[k];
    tail += a * a;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}
}  // namespace detail

/// What clipping did to one batch; costs B numbers to compute, so private_gradient always has it.
struct ClippingStats {
  /// Fraction of samples whose term is shorter than the raw gradient (factor < 1, norm > 0).
  /// For AbadiClipping this is the fraction with ‖g_b‖ > C, the usual "clipped" fraction.
  double fraction_clipped = 0.0;
  double mean_norm = 0.0;  ///< mean of ‖g_b‖ before clipping
  double max_norm = 0.0;   ///< largest ‖g_b‖ before clipping
};

/// Writes the private gradient (Σ_b f(‖g_b‖)·g_b + N(0, σ²C²I)) / B into `out` and returns the
/// clipping statistics of the batch.
///
/// @tparam Rule a ClippingRule (AbadiClipping, NsgdClipping, AutoSClipping, PsacClipping, ...).
/// @param per_sample d×B, one per-sample gradient per column (B ≥ 1); read, never copied.
/// @param rule the clipping rule; its clip_bound() C is the sensitivity the noise is scaled to.
/// @param noise_multiplier σ ≥ 0 (0: no noise and no draws, for testing).
/// @param rng the noise stream; advanced by d normal draws when σ > 0.
/// @param out d floats, overwritten.
/// @throws ConfigError on a size mismatch, σ < 0 or non-finite, or a non-finite per-sample
///   gradient ("non-finite per-sample gradient in column b"); `out` is untouched when it throws.
template <ClippingRule Rule>
ClippingStats private_gradient_with_stats(const Eigen::Ref<const Eigen::MatrixXf>& per_sample, const Rule& rule,
                                          double noise_multiplier, Rng& rng, std::span<float> out) {
  const Eigen::Index d = per_sample.rows();
  const Eigen::Index batch = per_sample.cols();
  decopt::detail::require(batch >= 1, "private_gradient: per_sample must have at least one column (batch size B >= 1)");
  decopt::detail::require(static_cast<std::size_t>(d) == out.size(),
                  "private_gradient: out.size() (" + std::to_string(out.size()) +
                      ") must equal the number of rows of per_sample (" + std::to_string(d) + ")");
  const GaussianMechanism mechanism{noise_multiplier, static_cast<double>(rule.clip_bound())};
  mechanism.validate();

  Eigen::VectorXf weights(batch);
  ClippingStats stats;
  std::size_t clipped = 0;
  for (Eigen::Index b = 0; b < batch; ++b) {
    // Ref<const MatrixXf> has unit inner stride, so each column is contiguous.
    const double norm = std::sqrt(detail::squared_norm_in_double(per_sample.col(b).data(), static_cast<std::size_t>(d)));
    if (!std::isfinite(norm)) {
      throw ConfigError("private_gradient: non-finite per-sample gradient in column " + std::to_string(b));
    }
    const double factor = static_cast<double>(rule.factor(norm));
    if (norm > 0.0 && factor < 1.0) ++clipped;
    stats.mean_norm += norm;
    stats.max_norm = std::max(stats.max_norm, norm);
    // 1/B folded into the weights so the sum and the mean are one pass.
    weights[b] = static_cast<float>(factor / static_cast<double>(batch));
  }
  stats.mean_norm /= static_cast<double>(batch);
  stats.fraction_clipped = static_cast<double>(clipped) / static_cast<double>(batch);

  Eigen::Map<Eigen::VectorXf> result(out.data(), d);
  result.noalias() = per_sample * weights;
  mechanism.add_noise(out, rng, 1.0 / static_cast<double>(batch));
  return stats;
}

/// private_gradient_with_stats without the statistics: `out` = (Σ_b f(‖g_b‖)·g_b + N(0, σ²C²I)) / B.
template <ClippingRule Rule>
void private_gradient(const Eigen::Ref<const Eigen::MatrixXf>& per_sample, const Rule& rule, double noise_multiplier,
                      Rng& rng, std::span<float> out) {
  (void)private_gradient_with_stats(per_sample, rule, noise_multiplier, rng, out);
}

}  // namespace decopt::privacy
DECOPT_AVX512_QUIET_END
