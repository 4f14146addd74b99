// decopt/privacy/gaussian_mechanism.hpp — the Gaussian mechanism: add N(0, σ²C²I).
//
// A query whose ℓ2-sensitivity is C (a sum of clipped per-sample terms) released with i.i.d.
// N(0, (σC)²) noise per coordinate is (α, α/(2σ²))-RDP for every α > 1 (Mironov, "Rényi
// Differential Privacy", CSF 2017); with Poisson subsampling at rate q the RdpAccountant
// (rdp_accountant.hpp) tracks the amplified guarantee. σ is the *noise multiplier*: the noise
// standard deviation in units of the sensitivity, the one number the accountant needs.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>
#include <sstream>

#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"

namespace decopt::privacy {

/// Noise N(0, (noise_multiplier·clip_bound)² I) added in place.
///
/// An aggregate, so `GaussianMechanism{sigma, C}` reads like the formula; the values are checked
/// when the mechanism is used (noise_multiplier ≥ 0 — 0 means no noise, for testing — and
/// clip_bound > 0, both finite), before anything is drawn or written.
struct GaussianMechanism {
  double noise_multiplier;  ///< σ: noise standard deviation in units of the sensitivity
  double clip_bound;        ///< C: the ℓ2-sensitivity of the query the noise protects

  /// Throws ConfigError naming noise_multiplier or clip_bound if either is out of range.
  void validate() const {
    if (!(std::isfinite(noise_multiplier) && noise_multiplier >= 0.0)) {
      std::ostringstream message;
      message << "GaussianMechanism: noise_multiplier must be a finite number >= 0, got " << noise_multiplier;
      throw ConfigError(message.str());
    }
    if (!(std::isfinite(clip_bound) && clip_bound > 0.0)) {
      std::ostringstream message;
      message << "GaussianMechanism: clip_bound must be a finite number > 0, got " << clip_bound;
      throw ConfigError(message.str());
    }
  }

  /// σ·C, the per-coordinate standard deviation of the noise.
  [[nodiscard]] double stddev() const noexcept { return noise_multiplier * clip_bound; }

  /// v += N(0, (σC·scale)² I). `scale` folds a later division (by the batch size) into the noise
  /// so the caller does not make a second pass over v. Draws nothing when σ = 0, so a noiseless
  /// run leaves the generator where it was.
  ///
  /// Normals by Marsaglia's polar method (Marsaglia & Bray 1964): exact like Box–Muller, but one
  /// log and one sqrt per pair instead of log, sqrt, sin and cos, which halves the cost of the
  /// noise — the larger part of a private gradient. Computed in double and rounded once, so the
  /// tails are those of the double-precision sampler. The stream is fixed by the seed.
  template <class T>
  void add_noise(std::span<T> v, Rng& rng, double scale = 1.0) const {
    validate();
    decopt::detail::require(std::isfinite(scale) && scale >= 0.0, "GaussianMechanism: scale must be finite and >= 0");
    const double sd = stddev() * scale;
    if (sd == 0.0) return;
    const std::size_t n = v.size();
    for (std::size_t i = 0; i < n; i += 2) {
      double x = 0.0, y = 0.0, s = 0.0;
      do {
        x = 2.0 * rng.uniform() - 1.0;
        y = 2.0 * rng.uniform() - 1.0;
        s = x * x + y * y;
      } while (s >= 1.0 || s == 0.0);
      const double f = sd * std::sqrt(-2.0 * std::log(s) / s);
      v[i] += static_cast<T>(x * f);
      if (i + 1 < n) v[i + 1] += static_cast<T>(y * f);
    }
  }
};

}  // namespace decopt::privacy
