// decopt/compositional/vrsc_estimator.hpp — the variance-reduced compositional gradient
// estimator shared by VRSC, AsyVRSCShared and AsyVRSCDistributed, with their common options,
// result type, and the per-epoch bookkeeping (history, stopping, divergence).
//
// Estimator (Lian, Wang & Liu, "Finite-sum composition optimization via variance reduced gradient
// descent", AISTATS 2017; the asynchronous variants in Shen, Xu, Liu, Guo & Ling, AsyVRSC, arXiv
// 1811.06396). At the start of an epoch, at the snapshot x̃:
//
//   G̃ = (1/m) Σ_j G_j(x̃),   ∂G̃ = (1/m) Σ_j ∂G_j(x̃),   ∇f(x̃) = ∂G̃ᵀ (1/n) Σ_i ∇F_i(G̃).
//
// An inner step at x draws i ∈ [n] and multisets A, B ⊂ [m] (uniform, with replacement, |A| =
// batch_a, |B| = batch_b, all independent) and forms
//
//   Ĝ   = G̃ + (1/|A|) Σ_{j∈A} (G_j(x) − G_j(x̃))
//   ∂Ĝ  = ∂G̃ + (1/|B|) Σ_{j∈B} (∂G_j(x) − ∂G_j(x̃))
//   v   = ∂Ĝᵀ ∇F_i(Ĝ) − ∂G̃ᵀ ∇F_i(G̃) + ∇f(x̃).
//
// ∂Ĝ is never formed: with u = ∇F_i(Ĝ), ũ = ∇F_i(G̃) and linearity,
//   v = ∂G̃ᵀ(u − ũ) + (1/|B|) Σ_{j∈B} (∂G_j(x)ᵀu − ∂G_j(x̃)ᵀu) + ∇f(x̃),
// which uses Jacobian-transpose products only (see HasJacobianTransposeProduct).
//
// Properties (tested): at x = x̃ the estimator is exactly ∇f(x̃) for every draw. E_B ∂Ĝ = ∂G(x)
// and E_A Ĝ = G(x); when ∇F_i is affine (quadratic F_i, e.g. the portfolio problem) and A, B, i are
// independent, E v = ∂G(x)ᵀ (1/n)Σ_i ∇F_i(G(x)) = ∇f(x), i.e. v is unbiased. For general F_i the
// estimator is biased, with a bias that vanishes as x → x̃ (Lian et al. 2017).
#pragma once

#include "decopt/compositional/problem.hpp"
#include "decopt/core/eigen.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

DECOPT_AVX512_QUIET_BEGIN
namespace decopt::compositional {

/// One row of a solver's history: the snapshot x̃ at the end of `epoch` (0 = the start point).
struct EpochRecord {
  int epoch = 0;
  double objective = 0.0;      ///< f(x̃)
  double suboptimality = std::numeric_limits<double>::quiet_NaN();  ///< (f − f*)/|f*|, NaN if f* unknown
  double gradient_norm = 0.0;  ///< ‖∇f(x̃)‖ (the full gradient computed for the snapshot)
  double seconds = 0.0;        ///< wall time since the solver started, including this snapshot
};

/// Options of the variance-reduced compositional solvers (all three share them).
struct VrscOptions {
  double step_size = 3e-4;           ///< η > 0 (the default suits the default PortfolioProblem)
  int epochs = 100;                  ///< maximum number of epochs (≥ 1)
  Eigen::Index inner_steps = 1000;   ///< inner steps per epoch, over all threads/workers (≥ 1)
  Eigen::Index batch_a = 1;          ///< |A|, samples of the inner value (≥ 1)
  Eigen::Index batch_b = 1;          ///< |B|, samples of the inner Jacobian (≥ 1)
  std::uint64_t seed = 1;            ///< seed of the sample streams
  /// Stop as soon as a snapshot meets it (0: run all epochs). With the optimal value f* given:
  /// relative suboptimality (f(x̃) − f*)/|f*| ≤ tolerance (absolute f − f* when f* = 0). Without:
  /// ‖∇f(x̃)‖ ≤ tolerance·‖∇f(x₀)‖.
  double tolerance = 0.0;
  /// Divergence threshold (> 1): see DivergenceError.
  double divergence_factor = 1e6;
  /// Called with each history row as it is recorded (progress reports); may be empty. It runs on
  /// the solver's snapshot thread, between inner phases; an exception it throws ends the run.
  std::function<void(const EpochRecord&)> on_epoch;
};

/// Thrown when an epoch ends with a non-finite objective or gradient, with ‖∇f(x̃)‖ above
/// divergence_factor·‖∇f(x₀)‖, or with f(x̃) − f(x₀) above divergence_factor times the initial
/// gap f(x₀) − f* (or |f(x₀)| when f* is unknown) — typically a step size that is too large.
/// The solver stops at once; it never loops on a diverged run.
struct DivergenceError : Error {
  DivergenceError(const std::string& what, int diverged_epoch) : Error(what), epoch(diverged_epoch) {}
  int epoch;  ///< the epoch at whose end divergence was detected (1-based)
};

/// What a solver returns. The user's x holds the last iterate (= the last snapshot).
struct CompositionalResult {
  std::vector<EpochRecord> history;  ///< epoch 0 (start) … epochs
  int epochs = 0;                    ///< completed epochs
  bool converged = false;            ///< the tolerance was met
  double objective = 0.0;            ///< f at the returned x
  double suboptimality = std::numeric_limits<double>::quiet_NaN();
  double seconds = 0.0;
  std::uint64_t updates = 0;          ///< inner steps applied to x
  std::uint64_t dropped_updates = 0;  ///< AsyVRSCDistributed: updates rejected as too stale / old epoch
  std::uint64_t max_staleness = 0;    ///< AsyVRSCDistributed: largest staleness of an applied update
};

namespace detail {

inline void validate(const VrscOptions& o) {
  using decopt::detail::require;
  require(std::isfinite(o.step_size) && o.step_size > 0.0,
          "vrsc: step_size must be finite and > 0, got " + std::to_string(o.step_size));
  require(o.epochs >= 1, "vrsc: epochs must be >= 1, got " + std::to_string(o.epochs));
  require(o.inner_steps >= 1, "vrsc: inner_steps must be >= 1, got " + std::to_string(o.inner_steps));
  require(o.batch_a >= 1, "vrsc: batch_a must be >= 1, got " + std::to_string(o.batch_a));
  require(o.batch_b >= 1, "vrsc: batch_b must be >= 1, got " + std::to_string(o.batch_b));
  require(std::isfinite(o.tolerance) && o.tolerance >= 0.0,
          "vrsc: tolerance must be finite and >= 0, got " + std::to_string(o.tolerance));
  require(std::isfinite(o.divergence_factor) && o.divergence_factor > 1.0,
          "vrsc: divergence_factor must be finite and > 1");
}

/// Checks the problem's sizes and the start point; throws ConfigError naming what is wrong.
template <class P>
void validate_problem(const P& problem, const ConstVectorRef& x) {
  using decopt::detail::require;
  require(problem.dimension() >= 1 && problem.inner_dimension() >= 1 && problem.outer_count() >= 1 &&
              problem.inner_count() >= 1,
          "compositional problem: dimension, inner_dimension, outer_count and inner_count must be >= 1");
  require(x.size() == problem.dimension(), "x has size " + std::to_string(x.size()) +
                                               " but the problem's dimension is " +
                                               std::to_string(problem.dimension()));
  require(x.allFinite(), "x (the start point) must be finite");
}

/// History, stopping rule and divergence check, shared by the three solvers. Not thread-safe:
/// call `observe` from one thread at a time (the solvers call it at the snapshot).
class EpochMonitor {
 public:
  EpochMonitor(const char* solver, const VrscOptions& options, std::optional<double> optimal_value)
      : solver_(solver), options_(options), optimal_value_(optimal_value),
        start_(std::chrono::steady_clock::now()) {}

  /// Records the snapshot of `epoch` (0 = start point). Returns true when the solver must stop
  /// (tolerance met or last epoch). Throws DivergenceError.
  bool observe(int epoch, double objective, double gradient_norm) {
    EpochRecord rec;
    rec.epoch = epoch;
    rec.objective = objective;
    rec.gradient_norm = gradient_norm;
    if (optimal_value_) rec.suboptimality = relative_gap(objective);
    rec.seconds = elapsed();
    result_.history.push_back(rec);
    result_.epochs = epoch;
    result_.objective = objective;
    result_.suboptimality = rec.suboptimality;
    result_.seconds = rec.seconds;
    if (epoch == 0) {
      f0_ = objective;
      g0_ = gradient_norm;
    }
    if (options_.on_epoch) options_.on_epoch(rec);
    check_divergence(epoch, objective, gradient_norm);
    if (options_.tolerance > 0.0) {
      const bool met = optimal_value_ ? rec.suboptimality <= options_.tolerance
                                      : gradient_norm <= options_.tolerance * g0_;
      if (met) {
        result_.converged = true;
        return true;
      }
    }
    return epoch >= options_.epochs;
  }

  [[nodiscard]] double relative_gap(double objective) const {
    const double gap = objective - *optimal_value_;
    return *optimal_value_ == 0.0 ? gap : gap / std::abs(*optimal_value_);
  }
  [[nodiscard]] double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  CompositionalResult& result() noexcept { return result_; }

 private:
  void check_divergence(int epoch, double objective, double gradient_norm) const {
    std::string why;
    if (!std::isfinite(objective) || !std::isfinite(gradient_norm)) {
      why = "non-finite objective or gradient";
    } else if (epoch > 0 && g0_ > 0.0 && gradient_norm > options_.divergence_factor * g0_) {
      why = "gradient norm grew by more than divergence_factor";
    } else if (epoch > 0) {
      const double scale = optimal_value_ ? std::abs(f0_ - *optimal_value_) : std::abs(f0_);
      if (scale > 0.0 && objective - f0_ > options_.divergence_factor * scale)
        why = "objective grew by more than divergence_factor times the initial gap";
    }
    if (why.empty()) return;
    std::ostringstream msg;
    msg << "decopt: " << solver_ << " diverged in epoch " << epoch << " (" << why
        << "; objective = " << objective << ", gradient norm = " << gradient_norm
        << "); reduce step_size (now " << options_.step_size << ")";
    throw DivergenceError(msg.str(), epoch);
  }

  const char* solver_;
  VrscOptions options_;
  std::optional<double> optimal_value_;
  std::chrono::steady_clock::time_point start_;
  CompositionalResult result_;
  double f0_ = 0.0;
  double g0_ = 0.0;
};

}  // namespace detail

/// The snapshot quantities (x̃, G̃, ∂G̃, ∇f(x̃)) and the variance-reduced estimator v. One object
/// per solver (or per distributed worker); `estimate` is const and thread-safe given one
/// Workspace per thread; the snapshot is changed only between inner phases.
/// @tparam P a CompositionalProblem.
template <class P>
class VrscEstimator {
 public:
  /// Per-thread scratch space, sized once: the inner steps allocate nothing.
  struct Workspace {
    Vector g_hat, g_tmp, u, du, jtu, x_local, v;
    Matrix jacobian;
    std::vector<Eigen::Index> a, b;
  };

  explicit VrscEstimator(const P& problem)
      : problem_(&problem), d_(problem.dimension()), p_(problem.inner_dimension()),
        n_(problem.outer_count()), m_(problem.inner_count()), x_tilde_(Vector::Zero(d_)),
        g_tilde_(Vector::Zero(p_)), j_tilde_(Matrix::Zero(p_, d_)), grad_tilde_(Vector::Zero(d_)) {
    detail::check_compositional_problem<P>();
  }

  [[nodiscard]] Workspace make_workspace(Eigen::Index batch_a = 1, Eigen::Index batch_b = 1) const {
    Workspace w;
    w.g_hat.resize(p_);
    w.g_tmp.resize(p_);
    w.u.resize(p_);
    w.du.resize(p_);
    w.jtu.resize(d_);
    w.x_local.resize(d_);
    w.v.resize(d_);
    if constexpr (!HasJacobianTransposeProduct<P>) w.jacobian.resize(p_, d_);
    w.a.resize(static_cast<std::size_t>(batch_a));
    w.b.resize(static_cast<std::size_t>(batch_b));
    return w;
  }

  // ---- snapshot: set_point, then accumulate_inner over a partition of [0, m), then finish ----

  /// Sets x̃ (copied).
  void set_point(const ConstVectorRef& x_tilde) { x_tilde_ = x_tilde; }

  /// g_sum += Σ_{j∈[begin,end)} G_j(x̃),  j_sum += Σ_{j∈[begin,end)} ∂G_j(x̃). Const, so threads
  /// can each accumulate a slice into their own sums.
  void accumulate_inner(Eigen::Index begin, Eigen::Index end, VectorRef g_sum, MatrixRef j_sum,
                        Workspace& w) const {
    if (w.jacobian.rows() != p_ || w.jacobian.cols() != d_) w.jacobian.resize(p_, d_);
    for (Eigen::Index j = begin; j < end; ++j) {
      problem_->inner_value(j, x_tilde_, w.g_tmp);
      g_sum += w.g_tmp;
      problem_->inner_jacobian(j, x_tilde_, w.jacobian);
      j_sum += w.jacobian;
    }
  }

  /// From the sums over all j ∈ [0, m): G̃, ∂G̃, then ∇f(x̃) = ∂G̃ᵀ (1/n) Σ_i ∇F_i(G̃).
  void finish_snapshot(const ConstVectorRef& g_sum, const Eigen::Ref<const Matrix>& j_sum, Workspace& w) {
    const double inv_m = 1.0 / static_cast<double>(m_);
    g_tilde_ = inv_m * g_sum;
    j_tilde_ = inv_m * j_sum;
    w.du.setZero();
    for (Eigen::Index i = 0; i < n_; ++i) {
      problem_->outer_gradient(i, g_tilde_, w.u);
      w.du += w.u;
    }
    w.du /= static_cast<double>(n_);
    grad_tilde_.noalias() = j_tilde_.transpose() * w.du;
  }

  /// The whole snapshot at x̃ on one thread.
  void compute_snapshot(const ConstVectorRef& x_tilde, Workspace& w) {
    set_point(x_tilde);
    Vector g_sum = Vector::Zero(p_);
    Matrix j_sum = Matrix::Zero(p_, d_);
    accumulate_inner(0, m_, g_sum, j_sum, w);
    finish_snapshot(g_sum, j_sum, w);
  }

  // ---- the estimator ----

  /// v = ∂Ĝᵀ∇F_i(Ĝ) − ∂G̃ᵀ∇F_i(G̃) + ∇f(x̃) for explicit samples i, A, B (see the header comment).
  void estimate(const ConstVectorRef& x, Eigen::Index i, std::span<const Eigen::Index> A,
                std::span<const Eigen::Index> B, Workspace& w, VectorRef v) const {
    w.g_hat = g_tilde_;
    const double scale_a = 1.0 / static_cast<double>(A.size());
    for (const Eigen::Index a : A) {
      problem_->inner_value(a, x, w.g_tmp);
      w.g_hat += scale_a * w.g_tmp;
      problem_->inner_value(a, x_tilde_, w.g_tmp);
      w.g_hat -= scale_a * w.g_tmp;
    }
    problem_->outer_gradient(i, w.g_hat, w.u);
    problem_->outer_gradient(i, g_tilde_, w.du);
    w.du = w.u - w.du;
    v.noalias() = j_tilde_.transpose() * w.du;
    v += grad_tilde_;
    const double scale_b = 1.0 / static_cast<double>(B.size());
    for (const Eigen::Index b : B) {
      jacobian_transpose_product(b, x, w);
      v += scale_b * w.jtu;
      jacobian_transpose_product(b, x_tilde_, w);
      v -= scale_b * w.jtu;
    }
  }

  /// Draws i ~ U[n], A, B ~ U[m] (with replacement, sizes w.a.size(), w.b.size()) from `rng` and
  /// writes the estimate into v.
  void sample_and_estimate(const ConstVectorRef& x, Rng& rng, Workspace& w, VectorRef v) const {
    const auto i = static_cast<Eigen::Index>(rng.below(static_cast<std::uint64_t>(n_)));
    for (auto& a : w.a) a = static_cast<Eigen::Index>(rng.below(static_cast<std::uint64_t>(m_)));
    for (auto& b : w.b) b = static_cast<Eigen::Index>(rng.below(static_cast<std::uint64_t>(m_)));
    estimate(x, i, w.a, w.b, w, v);
  }

  /// The stream of samples of (epoch, stream): VRSC uses stream 0, so AsyVRSCShared with one
  /// thread and AsyVRSCDistributed with one worker reproduce VRSC exactly.
  [[nodiscard]] static Rng sample_stream(std::uint64_t seed, int epoch, int stream) noexcept {
    return Rng::derive(seed, {0x76727363ULL /* "vrsc" */, static_cast<std::uint64_t>(epoch),
                              static_cast<std::uint64_t>(stream)});
  }

  // ---- snapshot as a flat array, for transports: [x̃ (d), G̃ (p), ∂G̃ (p·d, column-major), ∇f(x̃) (d)] ----

  [[nodiscard]] std::size_t snapshot_size() const noexcept {
    return static_cast<std::size_t>(2 * d_ + p_ + p_ * d_);
  }
  void save_snapshot(std::vector<double>& out) const {
    out.resize(snapshot_size());
    Eigen::Map<Vector> flat(out.data(), static_cast<Eigen::Index>(out.size()));
    flat << x_tilde_, g_tilde_, j_tilde_.reshaped(), grad_tilde_;
  }
  /// Throws DecodeError when the size does not match this problem.
  void load_snapshot(std::span<const double> in) {
    decopt::detail::require_decodable(in.size() == snapshot_size(),
                                      "vrsc snapshot: size does not match the problem");
    Eigen::Index at = 0;
    auto take = [&](Eigen::Index count) {
      Eigen::Map<const Vector> part(in.data() + at, count);
      at += count;
      return part;
    };
    x_tilde_ = take(d_);
    g_tilde_ = take(p_);
    j_tilde_.reshaped() = take(p_ * d_);
    grad_tilde_ = take(d_);
  }

  [[nodiscard]] const Vector& snapshot_point() const noexcept { return x_tilde_; }
  [[nodiscard]] const Vector& snapshot_inner_value() const noexcept { return g_tilde_; }
  [[nodiscard]] const Matrix& snapshot_jacobian() const noexcept { return j_tilde_; }
  /// ∇f(x̃), the full gradient at the snapshot.
  [[nodiscard]] const Vector& snapshot_gradient() const noexcept { return grad_tilde_; }
  [[nodiscard]] const P& problem() const noexcept { return *problem_; }

 private:
  void jacobian_transpose_product(Eigen::Index j, const ConstVectorRef& at, Workspace& w) const {
    if constexpr (HasJacobianTransposeProduct<P>) {
      problem_->inner_jacobian_transpose_product(j, at, w.u, w.jtu);
    } else {
      problem_->inner_jacobian(j, at, w.jacobian);
      w.jtu.noalias() = w.jacobian.transpose() * w.u;
    }
  }

  const P* problem_;
  Eigen::Index d_, p_, n_, m_;
  Vector x_tilde_;
  Vector g_tilde_;
  Matrix j_tilde_;
  Vector grad_tilde_;
};

}  // namespace decopt::compositional
DECOPT_AVX512_QUIET_END
