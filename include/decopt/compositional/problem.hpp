// decopt/compositional/problem.hpp — the contract of a finite-sum compositional problem.
//
//     min_x  f(x) = (1/n) Σ_{i=1..n} F_i( (1/m) Σ_{j=1..m} G_j(x) ),
//     G_j : R^d → R^p  (inner functions),   F_i : R^p → R  (outer functions).
//
// This is the problem class of SCGD (Wang, Fang & Liu, "Stochastic compositional gradient
// descent", Math. Programming 2017), of VRSC / compositional SVRG (Lian, Wang & Liu, "Finite-sum
// composition optimization via variance reduced gradient descent", AISTATS 2017) and of AsyVRSC
// (Shen, Xu, Liu, Guo & Ling, "Asynchronous Stochastic Composition Optimization with Variance
// Reduction", arXiv 1811.06396, 2018). By the chain
// rule  ∇f(x) = (∂G(x))ᵀ (1/n) Σ_i ∇F_i(G(x))  with  G = (1/m) Σ_j G_j  and  ∂G = (1/m) Σ_j ∂G_j.
#pragma once

#include <concepts>

#include "decopt/core/eigen.hpp"

DECOPT_AVX512_QUIET_BEGIN
namespace decopt::compositional {

/// Column vector of doubles, the type every compositional callback reads and writes.
using Vector = Eigen::VectorXd;
/// Dense matrix of doubles (Jacobians are p×d).
using Matrix = Eigen::MatrixXd;
/// Read-only view of a vector the caller owns (a Vector, a Map, a contiguous block).
using ConstVectorRef = Eigen::Ref<const Vector>;
/// Writable view of a vector the caller owns; the callee writes every entry.
using VectorRef = Eigen::Ref<Vector>;
/// Writable view of a p×d matrix the caller owns; the callee writes every entry.
using MatrixRef = Eigen::Ref<Matrix>;

namespace detail {
// Each requirement of CompositionalProblem on its own, so a solver can static_assert them one by
// one and say in one sentence which member is missing (a failed conjunction says much less).
template <class P>
concept HasSizes = requires(const P& p) {
  { p.dimension() } -> std::convertible_to<Eigen::Index>;
  { p.inner_dimension() } -> std::convertible_to<Eigen::Index>;
  { p.outer_count() } -> std::convertible_to<Eigen::Index>;
  { p.inner_count() } -> std::convertible_to<Eigen::Index>;
};
template <class P>
concept HasInnerValue = requires(const P& p, Eigen::Index j, const Vector& x, Vector& out) {
  p.inner_value(j, x, out);
};
template <class P>
concept HasInnerJacobian = requires(const P& p, Eigen::Index j, const Vector& x, Matrix& out) {
  p.inner_jacobian(j, x, out);
};
template <class P>
concept HasOuterGradient = requires(const P& p, Eigen::Index i, const Vector& y, Vector& out) {
  p.outer_gradient(i, y, out);
};
template <class P>
concept HasObjective = requires(const P& p, const Vector& x) {
  { p.objective(x) } -> std::convertible_to<double>;
};
}  // namespace detail

/// A finite-sum compositional problem f(x) = (1/n) Σ_i F_i((1/m) Σ_j G_j(x)).
///
/// Required const members (indices are 0-based; `out` arguments are pre-sized by the caller and
/// every entry must be written):
///   - `dimension()` d, `inner_dimension()` p, `outer_count()` n, `inner_count()` m;
///   - `inner_value(j, x, out)`      out = G_j(x) ∈ R^p;
///   - `inner_jacobian(j, x, out)`   out = ∂G_j(x) ∈ R^{p×d} (row k is ∇(G_j)_kᵀ);
///   - `outer_gradient(i, y, out)`   out = ∇F_i(y) ∈ R^p;
///   - `objective(x)`                f(x), used for histories, stopping and divergence checks.
/// Suggested signatures: `void inner_value(Eigen::Index, const ConstVectorRef&, VectorRef) const`
/// and alike. The solvers call these concurrently from several threads, so const members must be
/// safe to call concurrently (no mutable caches).
///
/// Optional (see HasJacobianTransposeProduct): `inner_jacobian_transpose_product(j, x, u, out)`.
template <class P>
concept CompositionalProblem = detail::HasSizes<P> && detail::HasInnerValue<P> &&
                               detail::HasInnerJacobian<P> && detail::HasOuterGradient<P> &&
                               detail::HasObjective<P>;

/// Optional fast path: `inner_jacobian_transpose_product(j, x, u, out)` sets out = ∂G_j(x)ᵀ u ∈ R^d
/// for u ∈ R^p.
///
/// Why it exists: the variance-reduced estimator only ever needs the minibatch Jacobians through
/// the product ∂G_jᵀu (by linearity, ∂Ĝᵀu = ∂G̃ᵀu + mean_{j∈B}(∂G_j(x) − ∂G_j(x̃))ᵀu), and for
/// structured inner maps that product is far cheaper than the dense p×d Jacobian — O(d) instead
/// of O(pd) for the portfolio problem, where p = d + 1. The dense Jacobian stays required because
/// the epoch snapshot ∂G̃ = (1/m) Σ_j ∂G_j(x̃) is a genuine p×d matrix. Problems without the
/// product are handled by forming ∂G_j(x) and multiplying, with the same result.
template <class P>
concept HasJacobianTransposeProduct =
    requires(const P& p, Eigen::Index j, const Vector& x, const Vector& u, Vector& out) {
      p.inner_jacobian_transpose_product(j, x, u, out);
    };

namespace detail {
/// Compile-time check with one sentence per missing member; call at the top of every solver.
template <class P>
constexpr void check_compositional_problem() {
  static_assert(HasSizes<P>,
                "decopt: a CompositionalProblem needs const members dimension(), inner_dimension(), "
                "outer_count() and inner_count() returning sizes.");
  static_assert(HasInnerValue<P>,
                "decopt: a CompositionalProblem needs `inner_value(j, x, out)` writing G_j(x) into a "
                "p-vector.");
  static_assert(HasInnerJacobian<P>,
                "decopt: a CompositionalProblem needs `inner_jacobian(j, x, out)` writing the p×d "
                "Jacobian of G_j at x.");
  static_assert(HasOuterGradient<P>,
                "decopt: a CompositionalProblem needs `outer_gradient(i, y, out)` writing ∇F_i(y) "
                "into a p-vector.");
  static_assert(HasObjective<P>,
                "decopt: a CompositionalProblem needs `double objective(x) const` returning f(x).");
}
}  // namespace detail

}  // namespace decopt::compositional
DECOPT_AVX512_QUIET_END
