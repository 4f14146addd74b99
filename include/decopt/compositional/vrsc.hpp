// decopt/compositional/vrsc.hpp — VRSC, the sequential variance-reduced stochastic compositional
// gradient method (compositional SVRG; Lian, Wang & Liu, "Finite-sum composition optimization via
// variance reduced gradient descent", AISTATS 2017).
//
//   for epoch s = 1, 2, …:
//     x̃ = x;  G̃, ∂G̃, ∇f(x̃)  (full passes, VrscEstimator snapshot)
//     repeat inner_steps times:  draw i, A, B;  x −= η v(x; i, A, B)
//
// with v the estimator of vrsc_estimator.hpp. For strongly convex f and η small enough the
// expected suboptimality decreases linearly (geometrically per epoch).
#pragma once

#include "decopt/compositional/problem.hpp"
#include "decopt/compositional/vrsc_estimator.hpp"
#include "decopt/core/diagnostics.hpp"

#include <optional>

DECOPT_AVX512_QUIET_BEGIN
namespace decopt::compositional {

/// Sequential VRSC. Options are validated by the constructor (ConfigError naming the option).
class VRSC {
 public:
  explicit VRSC(const VrscOptions& options = {}) : options_(options) { detail::validate(options_); }

  /// Minimises `problem` from x, updating x in place (x ends at the last snapshot).
  /// @param optimal_value f*, if known: histories then carry the relative suboptimality and the
  ///        tolerance applies to it.
  /// @throws ConfigError for a size mismatch or non-finite x; DivergenceError (an Error) naming
  ///         the epoch when the run diverges.
  template <class P>
  CompositionalResult optimize(const P& problem, VectorRef x,
                               std::optional<double> optimal_value = std::nullopt) const {
    detail::check_compositional_problem<P>();  // one sentence per missing member, and nothing else
    if constexpr (CompositionalProblem<P>) {
      return run(problem, x, optimal_value);
    } else {
      return {};
    }
  }

  [[nodiscard]] const VrscOptions& options() const noexcept { return options_; }

 private:
  template <CompositionalProblem P>
  CompositionalResult run(const P& problem, VectorRef x, std::optional<double> optimal_value) const {
    detail::validate_problem(problem, x);
    VrscEstimator<P> estimator(problem);
    auto w = estimator.make_workspace(options_.batch_a, options_.batch_b);
    detail::EpochMonitor monitor("VRSC", options_, optimal_value);
    for (int epoch = 0;; ++epoch) {
      estimator.compute_snapshot(x, w);
      if (monitor.observe(epoch, problem.objective(x), estimator.snapshot_gradient().norm())) break;
      Rng rng = VrscEstimator<P>::sample_stream(options_.seed, epoch, 0);
      for (Eigen::Index s = 0; s < options_.inner_steps; ++s) {
        estimator.sample_and_estimate(x, rng, w, w.v);
        x -= options_.step_size * w.v;
      }
      monitor.result().updates += static_cast<std::uint64_t>(options_.inner_steps);
    }
    return monitor.result();
  }

  VrscOptions options_;
};

}  // namespace decopt::compositional
DECOPT_AVX512_QUIET_END
