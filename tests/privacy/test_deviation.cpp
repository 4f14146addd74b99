// Tests for decopt/privacy/deviation.hpp: the deviation of a clipping rule's noise-free update
// from the true batch mean (the quantity DP-PSAC, arXiv 2212.00328, compares across rules).
#include <catch2/catch.hpp>

#include <decopt/core/error.hpp>
#include <decopt/core/rng.hpp>
#include <decopt/privacy/privacy.hpp>

#include <Eigen/Dense>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

using namespace decopt;
using namespace decopt::privacy;
using Catch::Contains;

namespace {

/// Column b is norms[b]·e_b: orthogonal gradients, so u and m have closed forms per coordinate.
Eigen::MatrixXf orthogonal_gradients(const std::vector<double>& norms) {
  const auto batch = static_cast<Eigen::Index>(norms.size());
  Eigen::MatrixXf g = Eigen::MatrixXf::Zero(batch + 1, batch);  // one more row that stays 0
  for (Eigen::Index b = 0; b < batch; ++b) g(b, b) = static_cast<float>(norms[static_cast<std::size_t>(b)]);
  return g;
}

/// The deviations the definitions give for orthogonal gradients of norms n_b under factor f:
/// u_b = f(n_b)·n_b/B and m_b = n_b/B on coordinate b.
template <class Rule>
ClippingDeviation expected_for_orthogonal(const std::vector<double>& norms, const Rule& rule) {
  const double batch = static_cast<double>(norms.size());
  double absolute = 0, update = 0, mean = 0;
  for (double n : norms) {
    const double f = rule.factor(n);
    absolute += (f - 1) * (f - 1) * n * n;
    update += f * f * n * n;
    mean += n * n;
  }
  double direction = 0;
  for (double n : norms) {
    const double d = rule.factor(n) * n / std::sqrt(update) - n / std::sqrt(mean);
    direction += d * d;
  }
  return {std::sqrt(absolute) / batch, std::sqrt(direction), std::sqrt(update) / batch, std::sqrt(mean) / batch};
}

/// Unit-norm random direction in R^d, as floats.
Eigen::VectorXf random_direction(Eigen::Index d, Rng& rng) {
  Eigen::VectorXd v(d);
  for (Eigen::Index k = 0; k < d; ++k) v[k] = rng.normal();
  return v.normalized().cast<float>();
}

}  // namespace

TEST_CASE("clipping_deviation: on orthogonal gradients each rule's deviations are the formulas", "[privacy][deviation]") {
  // Norms on both sides of C = 1 and of PSAC's peak √r − r ≈ 0.22, and one zero gradient.
  const std::vector<double> norms{0.0, 0.01, 0.2, 0.9, 1.5, 4.0};
  const Eigen::MatrixXf g = orthogonal_gradients(norms);
  const auto check = [&](const auto& rule) {
    INFO(rule.name);
    const ClippingDeviation got = clipping_deviation(g, rule);
    const ClippingDeviation want = expected_for_orthogonal(norms, rule);
    CHECK(got.absolute == Approx(want.absolute).epsilon(1e-5));
    CHECK(got.direction == Approx(want.direction).epsilon(1e-5));
    CHECK(got.update_norm == Approx(want.update_norm).epsilon(1e-5));
    CHECK(got.mean_norm == Approx(want.mean_norm).epsilon(1e-5));
    CHECK(got.absolute > 0.01);  // every rule changes this batch
  };
  check(AbadiClipping(1.0));
  check(NsgdClipping(1.0, 0.1));
  check(AutoSClipping(1.0));
  check(PsacClipping(1.0, 0.1));
}

TEST_CASE("clipping_deviation: Abadi clipping is exact when C is above every norm and only then",
          "[privacy][deviation]") {
  Rng rng(7);
  const std::vector<double> norms{0.2, 1.0, 3.0, 0.05};
  Eigen::MatrixXf g(50, static_cast<Eigen::Index>(norms.size()));
  for (Eigen::Index b = 0; b < g.cols(); ++b) g.col(b) = random_direction(50, rng) * static_cast<float>(norms[std::size_t(b)]);

  const ClippingDeviation unclipped = clipping_deviation(g, AbadiClipping(3.5));
  CHECK(unclipped.absolute == 0.0);
  CHECK(unclipped.direction == 0.0);
  CHECK(unclipped.update_norm == unclipped.mean_norm);

  // C = 2 clips the norm-3 sample only: u − m = (2/3 − 1)·g_3 / B, of norm (3 − 2)/4.
  const ClippingDeviation clipped = clipping_deviation(g, AbadiClipping(2.0));
  CHECK(clipped.absolute == Approx(0.25).epsilon(1e-5));
  CHECK(clipped.direction > 0.0);
}

TEST_CASE("clipping_deviation: with small gradients in stray directions PSAC keeps closer to the mean's direction "
          "than NSGD and Auto-S", "[privacy][deviation]") {
  // DP-PSAC's argument (arXiv 2212.00328, weight functions compared in its Fig. 2): NSGD's weight
  // C/(n + r) and Auto-S's C/(n + 0.01) blow near-zero gradients up towards norm C, so samples
  // that carry almost nothing of the mean steer the update; PSAC's weight stays near 1 there.
  Rng rng(11);
  const Eigen::Index d = 200;
  const Eigen::VectorXf signal = random_direction(d, rng);
  Eigen::MatrixXf g(d, 16);
  for (Eigen::Index b = 0; b < 4; ++b) g.col(b) = 3.0f * (signal + 0.3f * random_direction(d, rng)).normalized();
  for (Eigen::Index b = 4; b < 16; ++b) g.col(b) = 0.01f * random_direction(d, rng);

  const double abadi = clipping_deviation(g, AbadiClipping(1.0)).direction;
  const double psac = clipping_deviation(g, PsacClipping(1.0, 0.1)).direction;
  const double nsgd = clipping_deviation(g, NsgdClipping(1.0, 0.1)).direction;
  const double autos = clipping_deviation(g, AutoSClipping(1.0)).direction;
  INFO("abadi " << abadi << " psac " << psac << " nsgd " << nsgd << " auto-s " << autos);
  CHECK(psac < nsgd);
  CHECK(nsgd < autos);
  CHECK(psac < 0.02);
  CHECK(autos > 0.2);
  CHECK(abadi <= psac);  // C = 1 leaves the small samples alone
}

TEST_CASE("clipping_deviation: a zero vector has no direction", "[privacy][deviation]") {
  SECTION("u = m = 0") {
    const Eigen::MatrixXf zeros = Eigen::MatrixXf::Zero(3, 2);
    const ClippingDeviation dev = clipping_deviation(zeros, PsacClipping(1.0));
    CHECK(dev.absolute == 0.0);
    CHECK(dev.direction == 0.0);
  }
  SECTION("m = 0, u != 0: direction deviation 1") {
    Eigen::MatrixXf g = Eigen::MatrixXf::Zero(2, 3);
    g(0, 0) = 2.0f;
    g(0, 1) = -1.0f;
    g(0, 2) = -1.0f;
    const ClippingDeviation dev = clipping_deviation(g, AbadiClipping(1.0));  // u = (1 − 1 − 1)/3 e_1
    CHECK(dev.mean_norm == 0.0);
    CHECK(dev.update_norm == Approx(1.0 / 3.0));
    CHECK(dev.direction == Approx(1.0));
  }
}

TEST_CASE("clipping_deviation and batch_mean refuse bad input", "[privacy][deviation]") {
  const Eigen::MatrixXf empty(4, 0);
  std::vector<float> out(4), wrong(3);
  CHECK_THROWS_WITH(batch_mean(empty, out), Contains("at least one column"));
  const Eigen::MatrixXf g = Eigen::MatrixXf::Ones(4, 2);
  CHECK_THROWS_WITH(batch_mean(g, wrong), Contains("out.size() (3)"));
  CHECK_THROWS_WITH(clipping_deviation(g, PsacClipping(1.0), out, wrong), Contains("mean and update"));
  Eigen::MatrixXf bad = g;
  bad(2, 1) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(clipping_deviation(bad, NsgdClipping(1.0, 0.1)), Contains("column 1"));
}
