// Tests for decopt/compositional: the portfolio problem and its exact optimum, the
// variance-reduced estimator (exact at the snapshot, unbiased), linear convergence of VRSC,
// AsyVRSCShared and AsyVRSCDistributed, option validation, divergence detection, the channel, a
// thread pool that cannot be started in full.
#include <catch2/catch.hpp>

#include <decopt/compositional/compositional.hpp>

#include "compositional/problems.hpp"
#include "transport/watchdog.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

using namespace decopt;
using namespace decopt::compositional;

namespace {

using testing::small_problem;

/// ∇f(x) straight from the compositional definition: (mean_j ∂G_j(x))ᵀ mean_i ∇F_i(mean_j G_j(x)),
/// using the problem's callbacks only (no closed form, no estimator).
template <class P>
Vector compositional_gradient(const P& problem, const Vector& x) {
  const Eigen::Index p = problem.inner_dimension();
  const Eigen::Index d = problem.dimension();
  Vector g = Vector::Zero(p), gj(p);
  Matrix jac = Matrix::Zero(p, d), jj(p, d);
  for (Eigen::Index j = 0; j < problem.inner_count(); ++j) {
    problem.inner_value(j, x, gj);
    g += gj;
    problem.inner_jacobian(j, x, jj);
    jac += jj;
  }
  g /= static_cast<double>(problem.inner_count());
  jac /= static_cast<double>(problem.inner_count());
  Vector w = Vector::Zero(p), wi(p);
  for (Eigen::Index i = 0; i < problem.outer_count(); ++i) {
    problem.outer_gradient(i, g, wi);
    w += wi;
  }
  w /= static_cast<double>(problem.outer_count());
  return jac.transpose() * w;
}

Vector random_vector(Eigen::Index d, std::uint64_t seed, double scale = 0.05) {
  Rng rng(seed);
  Vector x(d);
  for (Eigen::Index k = 0; k < d; ++k) x(k) = scale * rng.normal();
  return x;
}

/// The portfolio problem without its Jacobian-transpose fast path, to exercise the dense fallback.
struct DenseOnlyPortfolio {
  const PortfolioProblem* base;
  Eigen::Index dimension() const { return base->dimension(); }
  Eigen::Index inner_dimension() const { return base->inner_dimension(); }
  Eigen::Index outer_count() const { return base->outer_count(); }
  Eigen::Index inner_count() const { return base->inner_count(); }
  void inner_value(Eigen::Index j, const ConstVectorRef& x, VectorRef out) const { base->inner_value(j, x, out); }
  void inner_jacobian(Eigen::Index j, const ConstVectorRef& x, MatrixRef out) const {
    base->inner_jacobian(j, x, out);
  }
  void outer_gradient(Eigen::Index i, const ConstVectorRef& y, VectorRef out) const {
    base->outer_gradient(i, y, out);
  }
  double objective(const ConstVectorRef& x) const { return base->objective(x); }
};
static_assert(CompositionalProblem<DenseOnlyPortfolio>);
static_assert(!HasJacobianTransposeProduct<DenseOnlyPortfolio>);

struct NoObjective {
  Eigen::Index dimension() const { return 1; }
  Eigen::Index inner_dimension() const { return 1; }
  Eigen::Index outer_count() const { return 1; }
  Eigen::Index inner_count() const { return 1; }
  void inner_value(Eigen::Index, const ConstVectorRef&, VectorRef) const {}
  void inner_jacobian(Eigen::Index, const ConstVectorRef&, MatrixRef) const {}
  void outer_gradient(Eigen::Index, const ConstVectorRef&, VectorRef) const {}
};
static_assert(!CompositionalProblem<NoObjective>);
static_assert(!CompositionalProblem<int>);

double relative_error(const Vector& a, const Vector& b) { return (a - b).norm() / std::max(b.norm(), 1e-300); }

}  // namespace

TEST_CASE("Portfolio: the exact optimum has zero compositional gradient and is a minimum",
          "[compositional][portfolio]") {
  const PortfolioProblem problem;  // the default problem: 100 assets, 1000 periods
  REQUIRE(problem.dimension() == 100);
  REQUIRE(problem.inner_dimension() == 101);
  REQUIRE(problem.outer_count() == 1000);
  REQUIRE(problem.inner_count() == 1000);
  const Vector& xs = problem.optimum();
  const Vector grad = compositional_gradient(problem, xs);
  CHECK(grad.norm() <= 1e-10 * problem.mean_return().norm());
  CHECK(problem.objective(xs) == Approx(problem.optimal_value()).epsilon(1e-12));
  CHECK(problem.optimal_value() < 0.0);
  for (std::uint64_t s = 0; s < 5; ++s) {
    const Vector dir = random_vector(problem.dimension(), 100 + s, 1e-3);
    CHECK(problem.objective(xs + dir) > problem.optimal_value());
  }
  // The compositional gradient and the closed form agree away from the optimum too.
  const Vector x = random_vector(problem.dimension(), 3);
  CHECK(relative_error(compositional_gradient(problem, x), problem.gradient(x)) <= 1e-12);
}

TEST_CASE("Portfolio: objective is the mean of F_i at the mean inner value; J^T u fast path is exact",
          "[compositional][portfolio]") {
  const auto problem = small_problem(6, 40);
  const Vector x = random_vector(6, 11, 0.5);
  Vector g = Vector::Zero(7), gj(7);
  for (Eigen::Index j = 0; j < 40; ++j) {
    problem.inner_value(j, x, gj);
    g += gj;
  }
  g /= 40.0;
  double f = 0.0;
  for (Eigen::Index i = 0; i < 40; ++i) f += problem.outer_value(i, g);
  CHECK(problem.objective(x) == Approx(f / 40.0).epsilon(1e-12));
  // Finite differences of F_i confirm outer_gradient.
  Vector grad(7);
  problem.outer_gradient(3, g, grad);
  for (Eigen::Index k = 0; k < 7; ++k) {
    Vector e = Vector::Zero(7);
    e(k) = 1e-6;
    const double fd = (problem.outer_value(3, g + e) - problem.outer_value(3, g - e)) / 2e-6;
    CHECK(grad(k) == Approx(fd).epsilon(1e-6).margin(1e-8));
  }
  const Vector u = random_vector(7, 12, 1.0);
  Matrix jac(7, 6);
  Vector jtu(6);
  for (Eigen::Index j = 0; j < 40; j += 7) {
    problem.inner_jacobian(j, x, jac);
    problem.inner_jacobian_transpose_product(j, x, u, jtu);
    CHECK(relative_error(jtu, jac.transpose() * u) <= 1e-14);
  }
}

TEST_CASE("Portfolio: returns are seeded, correlated and heavy-tailed", "[compositional][portfolio]") {
  PortfolioOptions o;
  o.assets = 30;
  o.periods = 4000;
  const Matrix a = generate_returns(o);
  const Matrix b = generate_returns(o);
  REQUIRE(a == b);
  o.seed = 2;
  REQUIRE(generate_returns(o) != a);
  // Market factor: the average pairwise correlation is clearly positive.
  const Vector mean = a.rowwise().mean();
  const Matrix c = a.colwise() - mean;
  const Matrix cov = c * c.transpose() / static_cast<double>(a.cols());
  double corr = 0.0;
  int pairs = 0;
  for (Eigen::Index i = 0; i < 30; ++i)
    for (Eigen::Index j = i + 1; j < 30; ++j, ++pairs) corr += cov(i, j) / std::sqrt(cov(i, i) * cov(j, j));
  CHECK(corr / pairs > 0.2);
  // Student-t(4) innovations: excess kurtosis well above the Gaussian 0.
  const Eigen::ArrayXd r = c.row(0).transpose().array();
  const double var = r.square().mean();
  const double kurtosis = r.pow(4).mean() / (var * var) - 3.0;
  CHECK(kurtosis > 0.5);
}

TEST_CASE("Estimator: at the snapshot it equals the full gradient for every draw", "[compositional][estimator]") {
  const auto problem = small_problem();
  VrscEstimator<PortfolioProblem> est(problem);
  auto w = est.make_workspace(3, 2);
  const Vector xt = random_vector(problem.dimension(), 21);
  est.compute_snapshot(xt, w);
  const Vector full = compositional_gradient(problem, xt);
  REQUIRE(relative_error(est.snapshot_gradient(), full) <= 1e-12);
  Rng rng(5);
  Vector v(problem.dimension());
  for (int draw = 0; draw < 50; ++draw) {
    est.sample_and_estimate(xt, rng, w, v);
    REQUIRE(relative_error(v, full) <= 1e-12);
  }
}

TEST_CASE("Estimator: unbiased at a non-snapshot point (exact average over all draws)",
          "[compositional][estimator]") {
  const auto problem = small_problem(4, 6, 3);
  const DenseOnlyPortfolio dense{&problem};
  VrscEstimator<PortfolioProblem> est(problem);
  VrscEstimator<DenseOnlyPortfolio> est_dense(dense);
  auto w = est.make_workspace();
  auto wd = est_dense.make_workspace();
  const Vector xt = random_vector(4, 31, 0.5);
  const Vector x = random_vector(4, 32, 0.5);
  est.compute_snapshot(xt, w);
  est_dense.compute_snapshot(xt, wd);
  const Vector target = compositional_gradient(problem, x);
  const Eigen::Index n = 6;
  // |A| = 2 (ordered pairs, with replacement), |B| = 1, i: every combination once.
  Vector sum = Vector::Zero(4), v(4), vd(4);
  Eigen::Index count = 0;
  double max_spread = 0.0;
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index a1 = 0; a1 < n; ++a1)
      for (Eigen::Index a2 = 0; a2 < n; ++a2)
        for (Eigen::Index b = 0; b < n; ++b) {
          const Eigen::Index A[2] = {a1, a2};
          const Eigen::Index B[1] = {b};
          est.estimate(x, i, A, B, w, v);
          est_dense.estimate(x, i, A, B, wd, vd);
          REQUIRE(relative_error(vd, v) <= 1e-12);  // the dense-Jacobian fallback agrees
          max_spread = std::max(max_spread, relative_error(v, target));
          sum += v;
          ++count;
        }
  CHECK(max_spread > 1e-3);  // individual draws do differ from ∇f(x)…
  CHECK(relative_error(sum / static_cast<double>(count), target) <= 1e-10);  // …their mean does not
}

TEST_CASE("Estimator: snapshot save/load round-trips and rejects a wrong size", "[compositional][estimator]") {
  const auto problem = small_problem(8, 50);
  VrscEstimator<PortfolioProblem> a(problem), b(problem);
  auto wa = a.make_workspace(2, 2);
  auto wb = b.make_workspace(2, 2);
  a.compute_snapshot(random_vector(8, 41), wa);
  std::vector<double> flat;
  a.save_snapshot(flat);
  REQUIRE(flat.size() == a.snapshot_size());
  b.load_snapshot(flat);
  const Vector x = random_vector(8, 42);
  Rng ra(9), rb(9);
  Vector va(8), vb(8);
  a.sample_and_estimate(x, ra, wa, va);
  b.sample_and_estimate(x, rb, wb, vb);
  REQUIRE(va == vb);
  flat.pop_back();
  REQUIRE_THROWS_AS(b.load_snapshot(flat), DecodeError);
}

TEST_CASE("VRSC converges linearly to 1e-6 relative suboptimality on the default problem",
          "[compositional][vrsc]") {
  const PortfolioProblem problem;
  VrscOptions o;
  o.tolerance = 1e-6;
  Vector x = Vector::Zero(problem.dimension());
  const auto r = VRSC(o).optimize(problem, x, problem.optimal_value());
  INFO("epochs " << r.epochs);
  REQUIRE(r.converged);
  CHECK(r.suboptimality <= 1e-6);
  CHECK(r.epochs <= 60);
  CHECK(r.history.size() == static_cast<std::size_t>(r.epochs) + 1);
  CHECK(r.updates == static_cast<std::uint64_t>(r.epochs) * 1000u);
  CHECK(r.history.front().suboptimality == Approx(1.0));  // x0 = 0: f(0) = 0, gap = |f*|
  CHECK((problem.objective(x) - problem.optimal_value()) / std::abs(problem.optimal_value()) <= 1e-6);
  CHECK(relative_error(x, problem.optimum()) <= 1e-2);
  // Linear rate: the second half of the run gains at least as many digits as the epochs suggest.
  const auto& h = r.history;
  const std::size_t mid = h.size() / 2;
  const double rate = std::pow(h.back().suboptimality / h[mid].suboptimality,
                               1.0 / static_cast<double>(h.size() - 1 - mid));
  CHECK(rate < 0.8);
}

TEST_CASE("AsyVRSCShared with one thread reproduces VRSC exactly", "[compositional][shared]") {
  const auto problem = small_problem();
  VrscOptions o;
  o.step_size = 1e-3;
  o.inner_steps = 200;
  o.epochs = 5;
  o.batch_a = 2;
  Vector x1 = Vector::Zero(problem.dimension()), x2 = x1;
  const auto r1 = VRSC(o).optimize(problem, x1, problem.optimal_value());
  AsyVrscSharedOptions so;
  static_cast<VrscOptions&>(so) = o;
  so.threads = 1;
  const auto r2 = AsyVRSCShared(so).optimize(problem, x2, problem.optimal_value());
  REQUIRE(x1 == x2);
  REQUIRE(r1.history.size() == r2.history.size());
  for (std::size_t e = 0; e < r1.history.size(); ++e) CHECK(r1.history[e].objective == r2.history[e].objective);
}

TEST_CASE("AsyVRSCShared with 2 threads converges to 1e-6 on the default problem", "[compositional][shared]") {
  const PortfolioProblem problem;
  AsyVrscSharedOptions o;
  o.threads = 2;
  o.tolerance = 1e-6;
  Vector x = Vector::Zero(problem.dimension());
  const auto r = AsyVRSCShared(o).optimize(problem, x, problem.optimal_value());
  INFO("epochs " << r.epochs);
  REQUIRE(r.converged);
  CHECK(r.suboptimality <= 1e-6);
  CHECK(r.epochs <= 80);
  CHECK((problem.objective(x) - problem.optimal_value()) / std::abs(problem.optimal_value()) <= 1e-6);
}

TEST_CASE("AsyVRSCShared with coordinates_per_step = b writes b coordinates per inner step and converges",
          "[compositional][shared]") {
  const auto problem = small_problem();  // d = 20
  const Eigen::Index d = problem.dimension();
  auto changed_after = [&](Eigen::Index block, Eigen::Index inner_steps) {
    AsyVrscSharedOptions o;
    o.threads = 1;
    o.epochs = 1;
    o.inner_steps = inner_steps;
    o.step_size = 1e-3;
    o.coordinates_per_step = block;
    Vector x = Vector::Zero(d);
    (void)AsyVRSCShared(o).optimize(problem, x, problem.optimal_value());
    return (x.array() != 0.0).count();
  };
  // From x = 0 the estimate v is nonzero in every coordinate, so what changed is what was written.
  CHECK(changed_after(0, 1) == d);
  CHECK(changed_after(1, 1) == 1);
  CHECK(changed_after(3, 1) == 3);
  CHECK(changed_after(1, 4) <= 4);
  CHECK(changed_after(d, 1) == d);

  // One coordinate per estimate still converges (the analysed model), given d times the steps.
  AsyVrscSharedOptions o;
  o.threads = 2;
  o.step_size = 1e-3;
  o.inner_steps = 200 * d;
  o.epochs = 40;
  o.coordinates_per_step = 1;
  o.tolerance = 1e-4;
  Vector x = Vector::Zero(d);
  const auto r = AsyVRSCShared(o).optimize(problem, x, problem.optimal_value());
  INFO("epochs " << r.epochs << ", suboptimality " << r.suboptimality);
  CHECK(r.converged);
  CHECK(r.suboptimality <= 1e-4);

  // One thread: the same seed gives the same bits.
  o.threads = 1;
  o.epochs = 3;
  o.tolerance = 0;
  Vector a = Vector::Zero(d), b = Vector::Zero(d);
  (void)AsyVRSCShared(o).optimize(problem, a, problem.optimal_value());
  (void)AsyVRSCShared(o).optimize(problem, b, problem.optimal_value());
  CHECK(a == b);
}

TEST_CASE("AsyVRSCDistributed with one worker reproduces VRSC exactly", "[compositional][distributed]") {
  const auto problem = small_problem();
  const VrscOptions o = testing::short_vrsc_options();
  Vector x1 = Vector::Zero(problem.dimension()), x2 = x1;
  const auto r1 = VRSC(o).optimize(problem, x1, problem.optimal_value());
  const auto r2 = AsyVRSCDistributed(testing::one_worker_options(o)).optimize(problem, x2, problem.optimal_value());
  REQUIRE(x1 == x2);
  CHECK(r2.dropped_updates == 0);
  CHECK(r2.max_staleness == 0);
  CHECK(r2.updates == r1.updates);
  REQUIRE(r1.history.size() == r2.history.size());
  for (std::size_t e = 0; e < r1.history.size(); ++e) CHECK(r1.history[e].objective == r2.history[e].objective);
}

TEST_CASE("AsyVRSCDistributed with 2 workers converges to 1e-6 with bounded staleness",
          "[compositional][distributed]") {
  const PortfolioProblem problem;
  const AsyVrscDistributedOptions o = testing::converging_options(2);
  Vector x = Vector::Zero(problem.dimension());
  testing::check_converged(problem, x, AsyVRSCDistributed(o).optimize(problem, x, problem.optimal_value()), o);
}

TEST_CASE("Bad sizes and options throw ConfigError naming the parameter", "[compositional][config]") {
  auto throws_naming = [](auto&& make, const char* name) {
    CHECK_THROWS_AS(make(), ConfigError);
    CHECK_THROWS_WITH(make(), Catch::Contains(name));
  };
  auto vrsc_with = [](auto edit) {
    return [edit] {
      VrscOptions o;
      edit(o);
      return VRSC(o);
    };
  };
  throws_naming(vrsc_with([](VrscOptions& o) { o.step_size = 0.0; }), "step_size");
  throws_naming(vrsc_with([](VrscOptions& o) { o.step_size = -1e-3; }), "step_size");
  throws_naming(vrsc_with([](VrscOptions& o) { o.step_size = std::nan(""); }), "step_size");
  throws_naming(vrsc_with([](VrscOptions& o) { o.epochs = 0; }), "epochs");
  throws_naming(vrsc_with([](VrscOptions& o) { o.inner_steps = 0; }), "inner_steps");
  throws_naming(vrsc_with([](VrscOptions& o) { o.batch_a = 0; }), "batch_a");
  throws_naming(vrsc_with([](VrscOptions& o) { o.batch_b = -2; }), "batch_b");
  throws_naming(vrsc_with([](VrscOptions& o) { o.tolerance = -1.0; }), "tolerance");
  throws_naming(vrsc_with([](VrscOptions& o) { o.divergence_factor = 0.5; }), "divergence_factor");
  throws_naming([] {
    AsyVrscSharedOptions o;
    o.threads = 0;
    return AsyVRSCShared(o);
  }, "threads");
  throws_naming([] {
    AsyVrscSharedOptions o;
    o.step_size = -1.0;
    return AsyVRSCShared(o);
  }, "step_size");
  throws_naming([] {
    AsyVrscSharedOptions o;
    o.coordinates_per_step = -1;
    return AsyVRSCShared(o);
  }, "coordinates_per_step");
  throws_naming([] {
    AsyVrscSharedOptions o;
    o.coordinates_per_step = 6;  // d = 5 below
    Vector x = Vector::Zero(5);
    return AsyVRSCShared(o).optimize(small_problem(5, 20), x);
  }, "coordinates_per_step");
  throws_naming([] {
    AsyVrscDistributedOptions o;
    o.workers = 0;
    return AsyVRSCDistributed(o);
  }, "workers");
  throws_naming([] {
    AsyVrscDistributedOptions o;
    o.max_staleness = -1;
    return AsyVRSCDistributed(o);
  }, "max_staleness");
  auto portfolio_with = [](auto edit) {
    return [edit] {
      PortfolioOptions o;
      o.assets = 5;
      o.periods = 20;
      edit(o);
      return PortfolioProblem(o);
    };
  };
  throws_naming(portfolio_with([](PortfolioOptions& o) { o.assets = 0; }), "assets");
  throws_naming(portfolio_with([](PortfolioOptions& o) { o.periods = 1; }), "periods");
  throws_naming(portfolio_with([](PortfolioOptions& o) { o.factors = -1; }), "factors");
  throws_naming(portfolio_with([](PortfolioOptions& o) { o.degrees_of_freedom = 2.0; }), "degrees_of_freedom");
  throws_naming(portfolio_with([](PortfolioOptions& o) { o.risk_aversion = 0.0; }), "risk_aversion");
  throws_naming(portfolio_with([](PortfolioOptions& o) { o.ridge = -0.1; }), "ridge");
  // n ≤ d without a ridge: Σ is singular.
  throws_naming(portfolio_with([](PortfolioOptions& o) {
    o.periods = 3;
    o.ridge = 0.0;
  }), "ridge");
  throws_naming([] { return InProcessChannel(0); }, "workers");

  const auto problem = small_problem(5, 20);
  Vector wrong = Vector::Zero(4);
  CHECK_THROWS_WITH(VRSC().optimize(problem, wrong), Catch::Contains("dimension"));
  CHECK_THROWS_AS(AsyVRSCShared().optimize(problem, wrong), ConfigError);
  CHECK_THROWS_AS(AsyVRSCDistributed().optimize(problem, wrong), ConfigError);
  Vector nonfinite = Vector::Zero(5);
  nonfinite(2) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(VRSC().optimize(problem, nonfinite), ConfigError);
}

TEST_CASE("A too-large step size is reported as divergence naming the epoch", "[compositional][divergence]") {
  const auto problem = small_problem();
  VrscOptions o;
  o.step_size = 0.5;
  o.inner_steps = 200;
  o.epochs = 1000;
  auto check = [&](auto&& run) {
    Vector x = Vector::Zero(problem.dimension());
    try {
      run(x);
      FAIL("no divergence reported");
    } catch (const DivergenceError& e) {
      CHECK(e.epoch == 1);
      CHECK_THAT(e.what(), Catch::Contains("diverged in epoch 1"));
      CHECK_THAT(e.what(), Catch::Contains("step_size"));
    }
  };
  check([&](Vector& x) { VRSC(o).optimize(problem, x, problem.optimal_value()); });
  AsyVrscSharedOptions so;
  static_cast<VrscOptions&>(so) = o;
  check([&](Vector& x) { AsyVRSCShared(so).optimize(problem, x, problem.optimal_value()); });
  AsyVrscDistributedOptions dopt;
  static_cast<VrscOptions&>(dopt) = o;
  check([&](Vector& x) { AsyVRSCDistributed(dopt).optimize(problem, x); });  // without f* too
  // DivergenceError is a decopt::Error.
  Vector x = Vector::Zero(problem.dimension());
  CHECK_THROWS_AS(VRSC(o).optimize(problem, x), Error);
}

TEST_CASE("Without f*, the tolerance applies to the gradient norm relative to the start",
          "[compositional][vrsc]") {
  const auto problem = small_problem();
  VrscOptions o;
  o.step_size = 1e-3;
  o.inner_steps = 200;
  o.tolerance = 1e-4;
  Vector x = Vector::Zero(problem.dimension());
  const auto r = VRSC(o).optimize(problem, x);
  REQUIRE(r.converged);
  CHECK(std::isnan(r.suboptimality));
  CHECK(r.history.back().gradient_norm <= 1e-4 * r.history.front().gradient_norm);
  CHECK(r.history[r.history.size() - 2].gradient_norm > 1e-4 * r.history.front().gradient_norm);
  CHECK(problem.gradient(x).norm() == Approx(r.history.back().gradient_norm).epsilon(1e-9));
}

TEST_CASE("InProcessChannel delivers models and updates and close() wakes blocked callers",
          "[compositional][channel]") {
  InProcessChannel channel(2);
  ModelMessage m;
  m.epoch = 1;
  m.version = 3;
  m.x = {1.0, 2.0};
  m.snapshot = {9.0};
  channel.send_model(1, m);
  m.version = 4;
  m.x = {5.0, 6.0};
  m.snapshot.clear();
  channel.send_model(1, m);  // unread: merged, the pending snapshot is kept
  ModelMessage got;
  REQUIRE(channel.pull_model(1, got));
  CHECK(got.version == 4);
  CHECK(got.x == std::vector<double>{5.0, 6.0});
  CHECK(got.snapshot == std::vector<double>{9.0});
  UpdateMessage u;
  u.worker = 1;
  u.version = 4;
  u.direction = {0.5};
  channel.push_update(u);
  UpdateMessage recv;
  REQUIRE(channel.receive_update(recv));
  CHECK(recv.worker == 1);
  CHECK(recv.direction == std::vector<double>{0.5});

  bool pulled = true;
  bool received = true;
  std::thread worker([&] { pulled = channel.pull_model(0, got); });
  std::thread master([&] { received = channel.receive_update(recv); });
  channel.close();
  worker.join();
  master.join();
  CHECK_FALSE(pulled);
  CHECK_FALSE(received);
  channel.push_update(u);  // dropped after close
  CHECK_FALSE(channel.receive_update(recv));
  CHECK_THROWS_AS(channel.send_model(2, m), ConfigError);
}

TEST_CASE("run_master and run_worker run over a caller-provided channel", "[compositional][distributed]") {
  const auto problem = small_problem();
  AsyVrscDistributedOptions o;
  o.step_size = 1e-3;
  o.inner_steps = 200;
  o.epochs = 60;
  o.tolerance = 1e-6;
  const AsyVRSCDistributed solver(o);
  InProcessChannel channel(3);
  std::vector<std::thread> workers;
  for (int w = 0; w < 3; ++w) workers.emplace_back([&, w] { solver.run_worker(problem, channel, w); });
  Vector x = Vector::Zero(problem.dimension());
  const auto r = solver.run_master(problem, x, channel, problem.optimal_value());
  for (auto& t : workers) t.join();
  CHECK(channel.closed());
  REQUIRE(r.converged);
  CHECK(r.suboptimality <= 1e-6);
  CHECK(r.max_staleness <= 8);
}

namespace {
/// A ThreadStarter that starts `allowed` threads (counting each whose work has returned) and then
/// fails the way a thread or memory limit does: std::system_error with EAGAIN from std::thread.
struct LimitedStarter {
  int allowed;
  std::shared_ptr<std::atomic<int>> started = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> finished = std::make_shared<std::atomic<int>>(0);
  std::jthread operator()(std::function<void()> work) const {
    if (started->load() >= allowed)
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again), "test: thread limit");
    ++*started;
    return std::jthread([work = std::move(work), done = finished] {
      work();
      ++*done;
    });
  }
};
}  // namespace

TEST_CASE("AsyVRSC: a thread that cannot be created is an Error naming how many started, not a deadlock",
          "[compositional][shared][distributed][threads]") {
  // decopt-portfolio --threads 800 under `ulimit -v` deadlocked: the started threads waited at the
  // barrier (or for a model) for threads that never started. The watchdog fails a hang in 20 s.
  auto problem = std::make_shared<const PortfolioProblem>(small_problem());
  for (int allowed : {0, 3}) {
    CAPTURE(allowed);
    const LimitedStarter shared_starter{allowed};
    AsyVrscSharedOptions so;
    so.threads = 8;
    so.epochs = 3;
    const auto shared_outcome = watchdog::returns_within(std::chrono::seconds(20), [problem, so, shared_starter] {
      Vector x = Vector::Zero(problem->dimension());
      AsyVRSCShared(so, shared_starter).optimize(*problem, x);
    });
    REQUIRE(shared_outcome.threw);
    CHECK_THAT(shared_outcome.message, Catch::StartsWith("decopt: "));  // a decopt::Error
    CHECK_THAT(shared_outcome.message,
               Catch::Contains("asyvrsc-shared") && Catch::Contains("test: thread limit") &&
                   Catch::Contains("could not start thread " + std::to_string(allowed + 1) + " of 7") &&
                   Catch::Contains("the " + std::to_string(allowed) + " threads already started were stopped and joined"));
    CHECK(shared_starter.finished->load() == allowed);

    const LimitedStarter distributed_starter{allowed};
    AsyVrscDistributedOptions dopt;
    dopt.workers = 5;
    dopt.epochs = 3;
    const auto distributed_outcome = watchdog::returns_within(std::chrono::seconds(20), [problem, dopt, distributed_starter] {
      Vector x = Vector::Zero(problem->dimension());
      AsyVRSCDistributed(dopt, distributed_starter).optimize(*problem, x);
    });
    REQUIRE(distributed_outcome.threw);
    CHECK_THAT(distributed_outcome.message,
               Catch::Contains("asyvrsc-distributed") &&
                   Catch::Contains("could not start thread " + std::to_string(allowed + 1) + " of 5") &&
                   Catch::Contains("the " + std::to_string(allowed) + " threads already started were stopped and joined"));
    CHECK(distributed_starter.finished->load() == allowed);
  }
  // A starter that always succeeds is used for every extra thread and changes nothing else:
  // with one thread (none started) the run is VRSC's, bit for bit, as without a starter.
  const LimitedStarter generous{100};
  AsyVrscSharedOptions so;
  so.threads = 3;
  so.epochs = 2;
  Vector x = Vector::Zero(problem->dimension());
  AsyVRSCShared(so, generous).optimize(*problem, x);
  CHECK(generous.started->load() == 2);
  CHECK(generous.finished->load() == 2);
}
