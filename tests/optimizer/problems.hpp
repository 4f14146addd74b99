// Reference problems for the optimizer tests: data split over nodes, full local gradients, and a
// centralized FISTA solver (in double) for the exact optimum of (1/n) Σ_i f_i(x) + λ‖x‖₁.
#pragma once

#include <Eigen/Dense>
#include <decopt/core/rng.hpp>

#include <cmath>
#include <span>
#include <vector>

namespace decopt::testing {

/// f_i(x) = (1/2m) ‖A_i x − b_i‖² (least squares) or (1/m) Σ log(1 + exp(−y_k a_kᵀx)) (logistic).
struct SplitProblem {
  enum class Loss { LeastSquares, Logistic } loss = Loss::LeastSquares;
  std::vector<Eigen::MatrixXd> A;  // per node, m × d
  std::vector<Eigen::VectorXd> b;  // per node, targets (±1 for logistic)
  int d = 0;

  [[nodiscard]] int nodes() const { return static_cast<int>(A.size()); }

  /// ∇f_i(x), in double.
  [[nodiscard]] Eigen::VectorXd gradient(int i, const Eigen::VectorXd& x) const {
    const double m = static_cast<double>(A[i].rows());
    if (loss == Loss::LeastSquares) return A[i].transpose() * (A[i] * x - b[i]) / m;
    const Eigen::VectorXd margin = b[i].cwiseProduct(A[i] * x);
    const Eigen::VectorXd coeff = -b[i].cwiseProduct((1.0 / (1.0 + margin.array().exp())).matrix());
    return A[i].transpose() * coeff / m;
  }
  [[nodiscard]] Eigen::VectorXd full_gradient(const Eigen::VectorXd& x) const {
    Eigen::VectorXd g = Eigen::VectorXd::Zero(d);
    for (int i = 0; i < nodes(); ++i) g += gradient(i, x);
    return g / nodes();
  }
  /// Lipschitz constant of ∇F (power iteration on the mean Hessian bound).
  [[nodiscard]] double lipschitz() const {
    Eigen::MatrixXd H = Eigen::MatrixXd::Zero(d, d);
    for (int i = 0; i < nodes(); ++i) H += A[i].transpose() * A[i] / static_cast<double>(A[i].rows());
    H /= nodes();
    const double scale = loss == Loss::Logistic ? 0.25 : 1.0;
    return scale * Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(H).eigenvalues().maxCoeff();
  }

  /// Gradient callback for node i over float buffers.
  void gradient_into(int i, std::span<const float> x, std::span<float> g) const {
    Eigen::VectorXd xd(d);
    for (int k = 0; k < d; ++k) xd[k] = x[static_cast<std::size_t>(k)];
    const Eigen::VectorXd gd = gradient(i, xd);
    for (int k = 0; k < d; ++k) g[static_cast<std::size_t>(k)] = static_cast<float>(gd[k]);
  }
};

/// Sparse ground truth (a third of the coordinates non-zero), i.i.d. rows split over the nodes.
inline SplitProblem make_problem(SplitProblem::Loss loss, int nodes, int rows_per_node, int d, std::uint64_t seed) {
  Rng rng(seed);
  Eigen::VectorXd truth = Eigen::VectorXd::Zero(d);
  for (int k = 0; k < d; k += 3) truth[k] = (k % 2 == 0 ? 1.0 : -1.0) * (0.5 + rng.uniform());
  SplitProblem p;
  p.loss = loss;
  p.d = d;
  for (int i = 0; i < nodes; ++i) {
    Eigen::MatrixXd A(rows_per_node, d);
    for (int r = 0; r < rows_per_node; ++r)
      for (int c = 0; c < d; ++c) A(r, c) = rng.normal();
    Eigen::VectorXd z = A * truth;
    Eigen::VectorXd b(rows_per_node);
    for (int r = 0; r < rows_per_node; ++r) {
      if (loss == SplitProblem::Loss::LeastSquares) b[r] = z[r] + 0.1 * rng.normal();
      else b[r] = (rng.uniform() < 1.0 / (1.0 + std::exp(-z[r]))) ? 1.0 : -1.0;
    }
    p.A.push_back(std::move(A));
    p.b.push_back(std::move(b));
  }
  return p;
}

/// FISTA (Beck & Teboulle 2009) for min F(x) + λ‖x‖₁, run to a tiny gradient-mapping norm.
inline Eigen::VectorXd fista(const SplitProblem& p, double lambda, int iterations = 20000) {
  const double step = 1.0 / p.lipschitz();
  Eigen::VectorXd x = Eigen::VectorXd::Zero(p.d), y = x;
  double t = 1;
  for (int it = 0; it < iterations; ++it) {
    Eigen::VectorXd z = y - step * p.full_gradient(y);
    Eigen::VectorXd next = z.array().sign() * (z.array().abs() - step * lambda).max(0.0);
    const double t_next = (1 + std::sqrt(1 + 4 * t * t)) / 2;
    y = next + ((t - 1) / t_next) * (next - x);
    if ((next - x).norm() < 1e-13) {
      x = next;
      break;
    }
    x = next;
    t = t_next;
  }
  return x;
}

}  // namespace decopt::testing
