// decopt/topology/spectral.hpp — the spectral gap of a mixing matrix.
//
// For a symmetric doubly stochastic W with eigenvalues 1 = λ1 ≥ λ2 ≥ … ≥ λn, the second largest
// eigenvalue modulus is SLEM = max(|λ2|, |λn|) and the spectral gap is δ = 1 − SLEM. δ is the
// consensus rate of gossip: ‖Wx − x̄‖ ≤ (1 − δ)‖x − x̄‖, and it is the δ in the step-size and rate
// conditions of CHOCO-SGD (Koloskova, Stich & Jaggi, "Decentralized stochastic optimization and
// gossip algorithms with compressed communication", ICML 2019).
//
// Two routines: an exact one on the dense matrix (Eigen::SelfAdjointEigenSolver, O(n³)) and a
// Lanczos iteration on the sparse W restricted to 1⊥ (O(iterations · (edges + n)) time, O(n)
// memory) for large graphs. Topology::spectral_gap() picks the exact one for n ≤
// kExactSpectrumMaxNodes.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "decopt/core/eigen.hpp"
#include "decopt/core/rng.hpp"

DECOPT_AVX512_QUIET_BEGIN
namespace decopt::spectral {

/// Graphs up to this many nodes get the exact dense eigenvalues.
inline constexpr int kExactSpectrumMaxNodes = 4096;

/// λ2 and λn of a symmetric stochastic matrix (the extreme eigenvalues after removing λ1 = 1,
/// eigenvector 1). For n = 1 both are 0 (there is nothing to mix: δ = 1).
struct ExtremeEigenvalues {
  double lambda2 = 0.0;
  double lambda_min = 0.0;
  int iterations = 0;      ///< Lanczos steps taken (0 for the exact routine)
  bool converged = true;   ///< false if Lanczos hit its iteration cap
  [[nodiscard]] double slem() const noexcept { return std::max(std::abs(lambda2), std::abs(lambda_min)); }
  [[nodiscard]] double gap() const noexcept { return std::clamp(1.0 - slem(), 0.0, 1.0); }
};

/// Exact λ2 and λn of a symmetric stochastic W (an Eigen::MatrixXd) from all its eigenvalues
/// (eigenvalues only, no vectors). Assumes λ1 = 1 is the largest eigenvalue, true for any
/// stochastic W. A template so that Eigen's eigensolver is compiled only where a spectrum is asked
/// for (Topology::extremes), not in every translation unit that includes decopt: instantiated from
/// a plain inline function it was 40% of the umbrella header's compile time.
template <class Matrix>
ExtremeEigenvalues exact_extremes(const Matrix& W) {
  ExtremeEigenvalues out;
  const auto n = W.rows();
  if (n <= 1) return out;
  Eigen::SelfAdjointEigenSolver<typename Matrix::PlainObject> solver(W, Eigen::EigenvaluesOnly);
  const auto& ev = solver.eigenvalues();  // ascending
  out.lambda2 = ev(n - 2);
  out.lambda_min = ev(0);
  return out;
}

namespace detail {

/// Number of eigenvalues of the symmetric tridiagonal T (diagonal a, off-diagonal b[1..k-1])
/// smaller than x, by the Sturm sequence of LDLᵀ pivots.
inline int count_below(const std::vector<double>& a, const std::vector<double>& b, std::size_t k, double x) {
  int count = 0;
  double d = 1.0;
  for (std::size_t i = 0; i < k; ++i) {
    const double off = i == 0 ? 0.0 : b[i];
    d = a[i] - x - (i == 0 ? 0.0 : off * off / d);
    if (d == 0.0) d = -std::numeric_limits<double>::epsilon() * (std::abs(x) + 1.0);
    if (d < 0.0) ++count;
  }
  return count;
}

/// The index-th smallest eigenvalue (0-based) of T by bisection to machine precision.
inline double tridiagonal_eigenvalue(const std::vector<double>& a, const std::vector<double>& b,
                                     std::size_t k, int index) {
  double lo = std::numeric_limits<double>::max(), hi = std::numeric_limits<double>::lowest();
  for (std::size_t i = 0; i < k; ++i) {  // Gershgorin interval
    const double r = (i == 0 ? 0.0 : std::abs(b[i])) + (i + 1 < k ? std::abs(b[i + 1]) : 0.0);
    lo = std::min(lo, a[i] - r);
    hi = std::max(hi, a[i] + r);
  }
  for (int it = 0; it < 200 && hi - lo > 2.0 * std::numeric_limits<double>::epsilon() *
                                              std::max(std::abs(lo), std::abs(hi)); ++it) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    if (count_below(a, b, k, mid) > index) hi = mid;
    else lo = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace detail

/// Options of the Lanczos routine.
struct LanczosOptions {
  /// Stop when, between two checks, both (1 − θ_max) and (1 + θ_min) change by less than this
  /// fraction of themselves (θ the extreme Ritz values).
  double relative_tolerance = 1e-10;
  /// Cap on Lanczos steps, as a multiple of n (the Krylov space of a random start has dimension
  /// n − 1 in exact arithmetic; without reorthogonalisation more steps may be needed).
  int max_steps_per_node = 20;
  std::uint64_t seed = 0x5eed5eedULL;  ///< start vector seed (the result is deterministic)
};

/// λ2 and λn of the symmetric stochastic n×n matrix applied by `apply(x, y)` (y = W x, both
/// Eigen::VectorXd), by the Lanczos iteration on W restricted to 1⊥.
///
/// The start vector is random (seeded) and projected onto 1⊥; every Lanczos vector is
/// re-projected onto 1⊥ so the eigenvalue 1 never re-enters through rounding. There is no
/// reorthogonalisation among Lanczos vectors: loss of orthogonality only makes converged Ritz
/// values reappear as copies ("ghosts"), which does not move the extreme ones (Paige 1980;
/// Cullum & Willoughby 1985), and it keeps the memory O(n). The extreme eigenvalues of the
/// tridiagonal T_k are computed by Sturm bisection at geometrically spaced k.
///
/// Accuracy: the extreme Ritz values approach λ2 from below and λn from above; the iteration stops
/// when 1 − θ_max and 1 + θ_min have stabilised to `relative_tolerance`, so δ is returned with a
/// relative error of about 1e-9 on graphs with a clear λ2 − λ3 separation, and to about 1e-7 when
/// λ2 is nearly degenerate or δ is ~1e-7 (e.g. ring(8192), where δ ≈ 2e-7 is close to the rounding
/// level of W). Steps needed grow like 1/√((λ2 − λ3)/(λ3 − λn)): a few for expanders, O(n) for a
/// ring.
template <class ApplyW>
ExtremeEigenvalues lanczos_extremes(int n, ApplyW&& apply, const LanczosOptions& options = {}) {
  ExtremeEigenvalues out;
  out.converged = true;
  if (n <= 1) return out;
  const auto nn = static_cast<Eigen::Index>(n);
  auto deflate = [&](Eigen::VectorXd& v) { v.array() -= v.mean(); };

  Eigen::VectorXd v(nn), v_prev = Eigen::VectorXd::Zero(nn), w(nn);
  Rng rng(options.seed);
  for (Eigen::Index i = 0; i < nn; ++i) v(i) = rng.uniform() - 0.5;
  deflate(v);
  v.normalize();

  std::vector<double> alpha, beta{0.0};  // beta[j] couples steps j-1 and j
  const long max_steps = std::max<long>(64, static_cast<long>(options.max_steps_per_node) * n);
  long next_check = 16;
  double prev_hi = std::numeric_limits<double>::quiet_NaN(), prev_lo = prev_hi;
  out.converged = false;
  for (long step = 0; step < max_steps; ++step) {
    apply(v, w);
    deflate(w);
    const double a = v.dot(w);
    w -= a * v + beta.back() * v_prev;
    deflate(w);
    alpha.push_back(a);
    const double b = w.norm();
    const std::size_t k = alpha.size();
    const bool breakdown = b <= 1e-13;
    if (static_cast<long>(k) >= next_check || breakdown || step + 1 == max_steps) {
      const double hi = detail::tridiagonal_eigenvalue(alpha, beta, k, static_cast<int>(k) - 1);
      const double lo = detail::tridiagonal_eigenvalue(alpha, beta, k, 0);
      out.lambda2 = hi;
      out.lambda_min = lo;
      out.iterations = static_cast<int>(k);
      const double eps = 8.0 * std::numeric_limits<double>::epsilon();
      const bool stable = std::abs(hi - prev_hi) <= options.relative_tolerance * (1.0 - hi) + eps &&
                          std::abs(lo - prev_lo) <= options.relative_tolerance * (1.0 + lo) + eps;
      if (breakdown || stable) {
        out.converged = true;
        break;
      }
      prev_hi = hi;
      prev_lo = lo;
      next_check = static_cast<long>(k) + std::max<long>(16, static_cast<long>(k) / 8);
    }
    v_prev.swap(v);
    v = w / b;
    beta.push_back(b);
  }
  return out;
}

}  // namespace decopt::spectral
DECOPT_AVX512_QUIET_END
