// decopt/compositional/portfolio.hpp — mean–variance portfolio optimisation as a compositional
// problem, the reference problem of the SCGD / VRSC / AsyVRSC literature (Wang, Fang & Liu 2017;
// Lian, Wang & Liu 2017; Shen, Xu, Liu, Guo & Ling, AsyVRSC, arXiv 1811.06396), with its exact
// optimum from one linear solve.
//
// Data: returns r_j ∈ R^d of d assets over n periods (j = 1..n; here m = n).
//
//   G_j(x) = [ x ; ⟨r_j, x⟩ ] ∈ R^{d+1}                         (inner, linear in x)
//   F_i(y) = −y_{d+1} + λ (⟨r_i, y_{1:d}⟩ − y_{d+1})² + (μ/2) ‖y_{1:d}‖²   (outer)
//
// With r̄ = (1/n) Σ_j r_j the mean inner value is G(x) = [x ; ⟨r̄, x⟩], so
//
//   f(x) = (1/n) Σ_i F_i(G(x)) = −⟨r̄, x⟩ + λ (1/n) Σ_i ⟨r_i − r̄, x⟩² + (μ/2)‖x‖²
//        = −r̄ᵀx + λ xᵀΣx + (μ/2)‖x‖²,      Σ = (1/n) Σ_i (r_i − r̄)(r_i − r̄)ᵀ,
//
// i.e. "maximise the mean return minus λ times the (population) variance of the portfolio
// return", plus a ridge. The ridge μ/2‖x‖² is placed inside F_i on the block y_{1:d}, which
// equals x exactly for every estimate Ĝ the solvers build, so the problem stays in compositional
// form. It makes f μ-strongly convex even when Σ is singular (n ≤ d, or collinear assets); Σ
// alone is positive definite only almost surely for n > d, and its smallest eigenvalue can be tiny.
//
// Exact optimum. ∇f(x) = −r̄ + (2λΣ + μI) x, so
//
//   x* = (2λΣ + μI)⁻¹ r̄      (one LDLT solve of a d×d symmetric positive-definite system)
//   f* = −r̄ᵀx* + ½ x*ᵀ(2λΣ + μI)x* = −½ r̄ᵀx*  (< 0 whenever r̄ ≠ 0).
//
// Asset returns generator (documented so results are reproducible from the seed): a factor
// model with heavy-tailed, correlated returns, in percent per period,
//
//   r_j = m + B z_j + diag(s) ε_j,
//   m_a ~ N(0.05, 0.05²)            expected return of asset a,
//   B_{a,0} ~ N(1, 0.3²)            loading on the market factor; B_{a,k>0} ~ N(0, 0.3²),
//   z_{j,k} = factor_volatility · t_ν / √(ν/(ν−2))         (unit-variance Student-t),
//   ε_{j,a} = t_ν / √(ν/(ν−2)),  s_a ~ idiosyncratic_volatility · U[0.5, 1.5],
//
// where t_ν = Z / √(χ²_ν/ν) with χ²_ν = 2·Gamma(ν/2) drawn by Marsaglia–Tsang. The common factors
// correlate the assets; ν ≈ 3–5 gives the fat tails of daily equity returns.
#pragma once

#include "decopt/compositional/problem.hpp"
#include "decopt/core/eigen.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

DECOPT_AVX512_QUIET_BEGIN
namespace decopt::compositional {

/// Parameters of the synthetic returns and of the objective. Defaults: 100 assets, 1000 periods.
struct PortfolioOptions {
  Eigen::Index assets = 100;              ///< d, number of assets (≥ 1)
  Eigen::Index periods = 1000;            ///< n = m, number of return periods (≥ 2)
  Eigen::Index factors = 3;               ///< common factors of the returns model (≥ 0)
  double degrees_of_freedom = 4.0;        ///< ν of the Student-t innovations (> 2: finite variance)
  double factor_volatility = 1.0;         ///< standard deviation of each factor, in percent
  double idiosyncratic_volatility = 1.0;  ///< typical asset-specific standard deviation, in percent
  double risk_aversion = 1.0;             ///< λ > 0
  double ridge = 0.5;                     ///< μ ≥ 0, the ridge (μ/2)‖x‖²
  std::uint64_t seed = 1;                 ///< seed of the returns generator
};

namespace detail {
/// Gamma(shape, 1) by Marsaglia & Tsang (2000) for shape ≥ 1.
inline double gamma_draw(Rng& rng, double shape) {
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double z;
    double v;
    do {
      z = rng.normal();
      v = 1.0 + c * z;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = 1.0 - rng.uniform();  // (0, 1]
    if (std::log(u) < 0.5 * z * z + d - d * v + d * std::log(v)) return d * v;
  }
}
/// Student-t(ν) scaled to unit variance (ν > 2).
inline double unit_student_t(Rng& rng, double nu) {
  const double chi2 = 2.0 * gamma_draw(rng, 0.5 * nu);
  return rng.normal() / std::sqrt(chi2 / nu) * std::sqrt((nu - 2.0) / nu);
}
inline bool finite_positive(double v) { return std::isfinite(v) && v > 0.0; }
}  // namespace detail

/// Draws a d×n matrix of asset returns (column j is r_j) from the factor model in the header
/// comment. Throws ConfigError naming the offending option.
inline Matrix generate_returns(const PortfolioOptions& o) {
  using decopt::detail::require;
  require(o.assets >= 1, "portfolio: assets must be >= 1, got " + std::to_string(o.assets));
  require(o.periods >= 2, "portfolio: periods must be >= 2, got " + std::to_string(o.periods));
  require(o.factors >= 0, "portfolio: factors must be >= 0, got " + std::to_string(o.factors));
  require(std::isfinite(o.degrees_of_freedom) && o.degrees_of_freedom > 2.0,
          "portfolio: degrees_of_freedom must be > 2 (finite variance), got " +
              std::to_string(o.degrees_of_freedom));
  require(std::isfinite(o.factor_volatility) && o.factor_volatility >= 0.0,
          "portfolio: factor_volatility must be finite and >= 0");
  require(detail::finite_positive(o.idiosyncratic_volatility),
          "portfolio: idiosyncratic_volatility must be finite and > 0");
  const Eigen::Index d = o.assets;
  const Eigen::Index n = o.periods;
  const Eigen::Index k = o.factors;
  Rng rng = Rng::derive(o.seed, {0x706f7274ULL /* "port" */});
  Vector mean(d);
  Matrix loadings(d, k);
  Vector idio(d);
  for (Eigen::Index a = 0; a < d; ++a) {
    mean(a) = 0.05 + 0.05 * rng.normal();
    for (Eigen::Index f = 0; f < k; ++f) loadings(a, f) = (f == 0 ? 1.0 : 0.0) + 0.3 * rng.normal();
    idio(a) = o.idiosyncratic_volatility * (0.5 + rng.uniform());
  }
  Matrix returns(d, n);
  Vector z(k);
  for (Eigen::Index j = 0; j < n; ++j) {
    for (Eigen::Index f = 0; f < k; ++f)
      z(f) = o.factor_volatility * detail::unit_student_t(rng, o.degrees_of_freedom);
    for (Eigen::Index a = 0; a < d; ++a)
      returns(a, j) = mean(a) + idio(a) * detail::unit_student_t(rng, o.degrees_of_freedom);
    if (k > 0) returns.col(j).noalias() += loadings * z;
  }
  return returns;
}

/// Mean–variance portfolio problem in compositional form (see the header comment for G_j, F_i,
/// f, and the derivation of the exact optimum x* = (2λΣ + μI)⁻¹ r̄, f* = −½ r̄ᵀx*).
/// Satisfies CompositionalProblem and HasJacobianTransposeProduct. Immutable after
/// construction, hence safe to share between threads.
class PortfolioProblem {
 public:
  /// Generates returns from `options` (seeded) and builds the problem.
  explicit PortfolioProblem(const PortfolioOptions& options = {})
      : PortfolioProblem(generate_returns(options), options.risk_aversion, options.ridge) {}

  /// Builds the problem over given returns (d×n, column j = r_j, n ≥ 2), risk aversion λ > 0 and
  /// ridge μ ≥ 0. Throws ConfigError for bad sizes, non-finite data, or a singular 2λΣ + μI.
  PortfolioProblem(Matrix returns, double risk_aversion, double ridge)
      : returns_(std::move(returns)), lambda_(risk_aversion), mu_(ridge) {
    using decopt::detail::require;
    require(returns_.rows() >= 1, "portfolio: returns must have at least one asset (row)");
    require(returns_.cols() >= 2, "portfolio: returns must have at least two periods (columns)");
    require(returns_.allFinite(), "portfolio: returns must be finite");
    require(detail::finite_positive(lambda_), "portfolio: risk_aversion must be finite and > 0");
    require(std::isfinite(mu_) && mu_ >= 0.0, "portfolio: ridge must be finite and >= 0");
    const auto n = static_cast<double>(returns_.cols());
    mean_ = returns_.rowwise().mean();
    const Matrix centred = returns_.colwise() - mean_;
    covariance_.noalias() = centred * centred.transpose() / n;
    Matrix hessian = 2.0 * lambda_ * covariance_;
    hessian.diagonal().array() += mu_;
    Eigen::LDLT<Matrix> ldlt(hessian);
    require(ldlt.info() == Eigen::Success && ldlt.isPositive() &&
                ldlt.vectorD().minCoeff() > 1e-12 * ldlt.vectorD().maxCoeff(),
            "portfolio: 2*risk_aversion*Sigma + ridge*I is singular; use ridge > 0");
    optimum_ = ldlt.solve(mean_);
    optimal_value_ = -0.5 * mean_.dot(optimum_);
  }

  [[nodiscard]] Eigen::Index dimension() const noexcept { return returns_.rows(); }
  [[nodiscard]] Eigen::Index inner_dimension() const noexcept { return returns_.rows() + 1; }
  [[nodiscard]] Eigen::Index outer_count() const noexcept { return returns_.cols(); }
  [[nodiscard]] Eigen::Index inner_count() const noexcept { return returns_.cols(); }

  /// out = G_j(x) = [x ; ⟨r_j, x⟩].
  void inner_value(Eigen::Index j, const ConstVectorRef& x, VectorRef out) const {
    const Eigen::Index d = dimension();
    out.head(d) = x;
    out(d) = returns_.col(j).dot(x);
  }

  /// out = ∂G_j(x) = [I_d ; r_jᵀ] ((d+1)×d, independent of x).
  void inner_jacobian(Eigen::Index j, const ConstVectorRef& /*x*/, MatrixRef out) const {
    const Eigen::Index d = dimension();
    out.topRows(d).setIdentity();
    out.row(d) = returns_.col(j).transpose();
  }

  /// out = ∂G_j(x)ᵀu = u_{1:d} + u_{d+1} r_j, in O(d).
  void inner_jacobian_transpose_product(Eigen::Index j, const ConstVectorRef& /*x*/,
                                        const ConstVectorRef& u, VectorRef out) const {
    const Eigen::Index d = dimension();
    out = u.head(d) + u(d) * returns_.col(j);
  }

  /// out = ∇F_i(y) = [2λ e r_i + μ y_{1:d} ; −1 − 2λ e],  e = ⟨r_i, y_{1:d}⟩ − y_{d+1}.
  void outer_gradient(Eigen::Index i, const ConstVectorRef& y, VectorRef out) const {
    const Eigen::Index d = dimension();
    const double e = returns_.col(i).dot(y.head(d)) - y(d);
    out.head(d) = (2.0 * lambda_ * e) * returns_.col(i) + mu_ * y.head(d);
    out(d) = -1.0 - 2.0 * lambda_ * e;
  }

  /// F_i(y) = −y_{d+1} + λ e² + (μ/2)‖y_{1:d}‖².
  [[nodiscard]] double outer_value(Eigen::Index i, const ConstVectorRef& y) const {
    const Eigen::Index d = dimension();
    const double e = returns_.col(i).dot(y.head(d)) - y(d);
    return -y(d) + lambda_ * e * e + 0.5 * mu_ * y.head(d).squaredNorm();
  }

  /// f(x) = (1/n) Σ_i F_i(G(x)) = −mean_i a_i + λ mean_i (a_i − ā)² + (μ/2)‖x‖²,  a_i = ⟨r_i, x⟩.
  [[nodiscard]] double objective(const ConstVectorRef& x) const {
    const Vector a = returns_.transpose() * x;
    const double abar = a.mean();
    return -abar + lambda_ * (a.array() - abar).square().mean() + 0.5 * mu_ * x.squaredNorm();
  }

  /// ∇f(x) = −r̄ + (2λΣ + μI)x, from the closed form (the solvers never use it).
  [[nodiscard]] Vector gradient(const ConstVectorRef& x) const {
    return -mean_ + 2.0 * lambda_ * (covariance_ * x) + mu_ * x;
  }

  /// x* = (2λΣ + μI)⁻¹ r̄.
  [[nodiscard]] const Vector& optimum() const noexcept { return optimum_; }
  /// f* = f(x*) = −½ r̄ᵀx*.
  [[nodiscard]] double optimal_value() const noexcept { return optimal_value_; }
  /// The returns, d×n, column j = r_j.
  [[nodiscard]] const Matrix& returns() const noexcept { return returns_; }
  /// r̄, the mean return per asset.
  [[nodiscard]] const Vector& mean_return() const noexcept { return mean_; }
  /// Σ, the population covariance of the returns.
  [[nodiscard]] const Matrix& covariance() const noexcept { return covariance_; }
  [[nodiscard]] double risk_aversion() const noexcept { return lambda_; }
  [[nodiscard]] double ridge() const noexcept { return mu_; }

 private:
  Matrix returns_;
  double lambda_;
  double mu_;
  Vector mean_;
  Matrix covariance_;
  Vector optimum_;
  double optimal_value_ = 0.0;
};

static_assert(CompositionalProblem<PortfolioProblem>);
static_assert(HasJacobianTransposeProduct<PortfolioProblem>);

}  // namespace decopt::compositional
DECOPT_AVX512_QUIET_END
