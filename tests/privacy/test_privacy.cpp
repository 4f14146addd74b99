// Tests for decopt/privacy: clipping rules, the Gaussian mechanism, private_gradient and the RDP
// accountant of the Poisson-subsampled Gaussian mechanism.
#include <catch2/catch.hpp>

#include <decopt/core/error.hpp>
#include <decopt/core/rng.hpp>
#include <decopt/privacy/privacy.hpp>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <tuple>
#include <vector>

using namespace decopt;
using namespace decopt::privacy;
using Catch::Contains;

static_assert(ClippingRule<AbadiClipping>);
static_assert(ClippingRule<NsgdClipping>);
static_assert(ClippingRule<AutoSClipping>);
static_assert(ClippingRule<PsacClipping>);
static_assert(!ClippingRule<int>);
static_assert(!ClippingRule<GaussianMechanism>);

namespace {

/// Random per-sample gradients: column b has a random direction and the norm norms[b].
Eigen::MatrixXf gradients_with_norms(Eigen::Index d, const std::vector<double>& norms, Rng& rng) {
  Eigen::MatrixXf g(d, static_cast<Eigen::Index>(norms.size()));
  for (Eigen::Index b = 0; b < g.cols(); ++b) {
    Eigen::VectorXd direction(d);
    for (Eigen::Index k = 0; k < d; ++k) direction[k] = rng.normal();
    direction.normalize();
    g.col(b) = (direction * norms[static_cast<std::size_t>(b)]).cast<float>();
  }
  return g;
}

/// Norms 0 and log-uniform on [1e-12, 1e6].
std::vector<double> property_norms(Rng& rng, int count) {
  std::vector<double> norms{0.0, 1e-12, 1e6};
  for (int k = 0; k < count; ++k) norms.push_back(std::pow(10.0, -12.0 + 18.0 * rng.uniform()));
  return norms;
}

template <class Rule>
void check_term_bound(const Rule& rule, bool strictly_below) {
  Rng rng(11);
  const double c = rule.clip_bound();
  for (double norm : property_norms(rng, 2000)) {
    const double factor = rule.factor(norm);
    INFO(Rule::name << " norm " << norm);
    REQUIRE(std::isfinite(factor));
    REQUIRE(factor >= 0.0);
    const double term_norm = factor * norm;
    if (strictly_below) {
      REQUIRE(term_norm < c);
    } else {
      REQUIRE(term_norm <= c * (1.0 + 1e-15));
    }
  }
  // The same bound on the float terms private_gradient actually forms (B = 1, no noise).
  const std::vector<double> norms = property_norms(rng, 200);
  const Eigen::MatrixXf g = gradients_with_norms(32, norms, rng);
  std::vector<float> out(32);
  for (Eigen::Index b = 0; b < g.cols(); ++b) {
    const Eigen::MatrixXf column = g.col(b);
    private_gradient(column, rule, 0.0, rng, out);
    const double term_norm = Eigen::Map<const Eigen::VectorXf>(out.data(), 32).cast<double>().norm();
    INFO(Rule::name << " column " << b << " norm " << norms[static_cast<std::size_t>(b)]);
    REQUIRE(std::isfinite(term_norm));
    REQUIRE(term_norm <= c * (1.0 + 1e-6));  // float rounding of the product only
    if (norms[static_cast<std::size_t>(b)] == 0.0) REQUIRE(term_norm == 0.0);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Clipping rules

TEST_CASE("Every clipped term has norm <= C, and < C for NSGD, Auto-S and PSAC", "[privacy][clipping]") {
  for (double c : {0.1, 1.0, 7.5}) {
    check_term_bound(AbadiClipping{c}, false);
    check_term_bound(NsgdClipping{c, 0.01}, true);
    check_term_bound(AutoSClipping{c}, true);
    check_term_bound(PsacClipping{c}, true);
    check_term_bound(PsacClipping{c, 2.0}, true);
  }
}

TEST_CASE("Clipping factors follow their formulas", "[privacy][clipping]") {
  const AbadiClipping abadi{2.0};
  REQUIRE(abadi.factor(0.0) == 1.0);
  REQUIRE(abadi.factor(1.5) == 1.0);
  REQUIRE(abadi.factor(2.0) == 1.0);
  REQUIRE(abadi.factor(8.0) == Approx(0.25));
  REQUIRE(abadi.clip_bound() == 2.0);

  const NsgdClipping nsgd{2.0, 0.5};
  REQUIRE(nsgd.factor(0.0) == Approx(4.0));
  REQUIRE(nsgd.factor(1.5) == Approx(1.0));

  const AutoSClipping autos{1.0};
  REQUIRE(autos.gamma() == 0.01);
  REQUIRE(autos.factor(0.99) == Approx(1.0));

  const PsacClipping psac{3.0};
  REQUIRE(psac.r() == 0.1);
  REQUIRE(psac.factor(0.0) == Approx(3.0));  // w(0) = 1/(0 + r/r) = 1
  REQUIRE(psac.weight(1.0) == Approx(1.0 / (1.0 + 0.1 / 1.1)));
  REQUIRE(psac.factor(1.0) == Approx(3.0 / (1.0 + 0.1 / 1.1)));

  REQUIRE(std::string(AbadiClipping::name) == "abadi");
  REQUIRE(std::string(PsacClipping::name) == "psac");
}

TEST_CASE("PSAC's weight is non-monotonic while its term norm rises monotonically to C", "[privacy][clipping]") {
  const double r = 0.1;
  const PsacClipping psac{1.0, r};
  const double peak = std::sqrt(r) - r;  // where n + r/(n + r) is smallest
  // The weight rises from w(0) = 1 to the peak and falls after it.
  REQUIRE(psac.weight(0.0) == Approx(1.0));
  REQUIRE(psac.weight(0.5 * peak) > psac.weight(0.0));
  REQUIRE(psac.weight(peak) > psac.weight(0.5 * peak));
  REQUIRE(psac.weight(peak) > psac.weight(2.0 * peak));
  REQUIRE(psac.weight(2.0 * peak) > psac.weight(1.0));
  REQUIRE(psac.weight(peak) > psac.weight(peak * 0.999));
  REQUIRE(psac.weight(peak) > psac.weight(peak * 1.001));
  REQUIRE(psac.weight(peak) > 1.8);  // 1/(2√r − r) = 1.88 for r = 0.1
  REQUIRE(psac.weight(100.0) < 0.011);
  // Unlike NSGD with the same r, tiny gradients are not inflated to weight C/r = 10.
  REQUIRE(NsgdClipping{1.0, r}.factor(1e-6) > 9.9);
  REQUIRE(psac.factor(1e-6) < 1.01);
  // Term norm C·n·w(n): strictly increasing on a log grid, below C, and approaching it.
  double previous = 0.0;
  for (double n = 1e-6; n < 1e6; n *= 1.1) {
    const double term = psac.factor(n) * n;
    REQUIRE(term > previous);
    REQUIRE(term < 1.0);
    previous = term;
  }
  REQUIRE(previous > 0.999999);
}

TEST_CASE("Clipping rules reject bad parameters, naming them", "[privacy][clipping][errors]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (double bad : {0.0, -1.0, nan, inf}) {
    REQUIRE_THROWS_AS(AbadiClipping{bad}, ConfigError);
    REQUIRE_THROWS_WITH(AbadiClipping{bad}, Contains("clip_bound"));
    REQUIRE_THROWS_WITH((NsgdClipping{bad, 0.1}), Contains("clip_bound"));
    REQUIRE_THROWS_WITH((NsgdClipping{1.0, bad}), Contains("NsgdClipping") && Contains(": r must"));
    REQUIRE_THROWS_WITH(AutoSClipping{bad}, Contains("clip_bound"));
    REQUIRE_THROWS_WITH((AutoSClipping{1.0, bad}), Contains("gamma"));
    REQUIRE_THROWS_WITH(PsacClipping{bad}, Contains("clip_bound"));
    REQUIRE_THROWS_WITH((PsacClipping{1.0, bad}), Contains("PsacClipping") && Contains(": r must"));
  }
}

// ---------------------------------------------------------------------------------------------
// Gaussian mechanism and private_gradient

TEST_CASE("GaussianMechanism validates and adds nothing at sigma = 0", "[privacy][mechanism]") {
  std::vector<float> v{1.0f, -2.0f, 3.0f};
  Rng rng(3);
  const Rng before = rng;
  GaussianMechanism{0.0, 1.0}.add_noise(std::span<float>(v), rng);
  REQUIRE(v == std::vector<float>{1.0f, -2.0f, 3.0f});
  REQUIRE(rng == before);
  GaussianMechanism{1.0, 2.0}.add_noise(std::span<float>(v), rng);
  REQUIRE(v != std::vector<float>{1.0f, -2.0f, 3.0f});
  REQUIRE(GaussianMechanism{1.5, 2.0}.stddev() == 3.0);
  REQUIRE_THROWS_WITH((GaussianMechanism{-1.0, 1.0}.validate()), Contains("noise_multiplier"));
  REQUIRE_THROWS_WITH((GaussianMechanism{std::nan(""), 1.0}.validate()), Contains("noise_multiplier"));
  REQUIRE_THROWS_WITH((GaussianMechanism{1.0, 0.0}.validate()), Contains("clip_bound"));
  REQUIRE_THROWS_AS((GaussianMechanism{1.0, -2.0}.add_noise(std::span<float>(v), rng)), ConfigError);
}

TEST_CASE("private_gradient with sigma = 0 is the weighted mean of the clipped terms", "[privacy][gradient]") {
  Rng rng(21);
  const Eigen::Index d = 1000;
  const std::vector<double> norms{0.0, 0.3, 1.0, 2.5, 40.0, 1e-4, 7.0};
  const Eigen::MatrixXf g = gradients_with_norms(d, norms, rng);
  const auto batch = static_cast<double>(norms.size());
  auto check = [&](const auto& rule) {
    std::vector<float> out(static_cast<std::size_t>(d), 123.0f);
    const Rng before = rng;
    private_gradient(g, rule, 0.0, rng, out);
    REQUIRE(rng == before);  // no noise, no draws
    Eigen::VectorXd expected = Eigen::VectorXd::Zero(d);
    for (Eigen::Index b = 0; b < g.cols(); ++b) {
      const double norm = g.col(b).cast<double>().norm();
      expected += rule.factor(norm) * g.col(b).cast<double>();
    }
    expected /= batch;
    const Eigen::VectorXd got = Eigen::Map<const Eigen::VectorXf>(out.data(), d).cast<double>();
    INFO(std::decay_t<decltype(rule)>::name);
    REQUIRE((got - expected).norm() <= 1e-6 * expected.norm());
  };
  check(AbadiClipping{1.0});
  check(NsgdClipping{1.0, 0.01});
  check(AutoSClipping{1.0});
  check(PsacClipping{1.0});

  // One unclipped sample: the output is that gradient, bit for bit.
  const Eigen::MatrixXf single = g.col(1);  // norm 0.3 < C
  std::vector<float> out(static_cast<std::size_t>(d));
  private_gradient(single, AbadiClipping{1.0}, 0.0, rng, out);
  for (Eigen::Index k = 0; k < d; ++k) REQUIRE(out[static_cast<std::size_t>(k)] == single(k, 0));
}

TEST_CASE("private_gradient noise has per-coordinate variance sigma^2 C^2 / B^2", "[privacy][gradient]") {
  const Eigen::Index d = 200000;
  const double sigma = 1.3;
  const double c = 2.0;
  for (int batch : {1, 4, 16}) {
    Rng data_rng(5 + static_cast<std::uint64_t>(batch));
    std::vector<double> norms;
    for (int b = 0; b < batch; ++b) norms.push_back(0.5 + 3.0 * data_rng.uniform());
    const Eigen::MatrixXf g = gradients_with_norms(d, norms, data_rng);
    const PsacClipping rule{c};
    std::vector<float> clean(static_cast<std::size_t>(d)), noisy(static_cast<std::size_t>(d));
    Rng rng(99);
    private_gradient(g, rule, 0.0, rng, clean);
    private_gradient(g, rule, sigma, rng, noisy);
    double sum = 0.0, sum_sq = 0.0, sum_4 = 0.0;
    for (std::size_t k = 0; k < noisy.size(); ++k) {
      const double e = static_cast<double>(noisy[k]) - static_cast<double>(clean[k]);
      sum += e;
      sum_sq += e * e;
      sum_4 += e * e * e * e;
    }
    const double n = static_cast<double>(d);
    const double mean = sum / n;
    const double variance = sum_sq / n - mean * mean;
    const double expected = sigma * sigma * c * c / (batch * batch);
    INFO("B = " << batch << " variance " << variance << " expected " << expected);
    // The sample variance of n normals has relative sd √(2/n) ≈ 0.32%; 2% is > 6 sd and still
    // tells 1/B² from 1/B or from σ²·C² without C.
    REQUIRE(std::abs(variance / expected - 1.0) < 0.02);
    REQUIRE(std::abs(mean) < 6.0 * std::sqrt(expected / n));
    // Gaussian, not merely the right variance: kurtosis 3 (its estimate has sd √(24/n) ≈ 0.011).
    REQUIRE(std::abs(sum_4 / n / (variance * variance) - 3.0) < 0.1);
  }
}

TEST_CASE("private_gradient reports clipping statistics", "[privacy][gradient]") {
  Rng rng(8);
  const std::vector<double> norms{0.0, 0.5, 2.0, 4.0, 6.0};
  const Eigen::MatrixXf g = gradients_with_norms(64, norms, rng);
  std::vector<float> out(64);
  const ClippingStats stats = private_gradient_with_stats(g, AbadiClipping{1.0}, 0.0, rng, out);
  REQUIRE(stats.fraction_clipped == Approx(3.0 / 5.0));
  REQUIRE(stats.mean_norm == Approx(12.5 / 5.0).epsilon(1e-6));
  REQUIRE(stats.max_norm == Approx(6.0).epsilon(1e-6));
  const ClippingStats loose = private_gradient_with_stats(g, AbadiClipping{10.0}, 0.0, rng, out);
  REQUIRE(loose.fraction_clipped == 0.0);
}

TEST_CASE("private_gradient rejects bad sizes, noise and non-finite gradients", "[privacy][gradient][errors]") {
  Rng rng(4);
  Eigen::MatrixXf g = Eigen::MatrixXf::Ones(8, 3);
  std::vector<float> out(8, 7.0f), wrong(7);
  const AbadiClipping rule{1.0};
  REQUIRE_THROWS_WITH(private_gradient(g, rule, 1.0, rng, wrong), Contains("out.size()"));
  const Eigen::MatrixXf empty(8, 0);
  REQUIRE_THROWS_WITH(private_gradient(empty, rule, 1.0, rng, out), Contains("B >= 1"));
  REQUIRE_THROWS_WITH(private_gradient(g, rule, -0.5, rng, out), Contains("noise_multiplier"));
  g(5, 2) = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_WITH(private_gradient(g, rule, 1.0, rng, out), Contains("non-finite per-sample gradient in column 2"));
  g(5, 2) = 0.0f;
  g(0, 1) = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_AS(private_gradient(g, rule, 1.0, rng, out), ConfigError);
  REQUIRE_THROWS_WITH(private_gradient(g, rule, 1.0, rng, out), Contains("column 1"));
  REQUIRE(out == std::vector<float>(8, 7.0f));  // untouched by the failed calls
  // Large but finite floats do not overflow the norm into a false "non-finite" report.
  g.setConstant(1e30f);
  REQUIRE_NOTHROW(private_gradient(g, rule, 0.0, rng, out));
  REQUIRE(Eigen::Map<const Eigen::VectorXf>(out.data(), 8).norm() == Approx(1.0).epsilon(1e-5));
}

// ---------------------------------------------------------------------------------------------
// RDP accountant

TEST_CASE("RdpAccountant reproduces Opacus: sigma 1.5, q 0.04, 2250 steps, delta 1e-5", "[privacy][rdp]") {
  RdpAccountant accountant;
  accountant.step(1.5, 0.04, 2250);
  REQUIRE(accountant.epsilon(1e-5) == Approx(7.32911117143).epsilon(1e-6));
  // Stepping one at a time, as Opacus's test does, gives the same figure.
  RdpAccountant one_by_one;
  for (int k = 0; k < 2250; ++k) one_by_one.step(1.5, 0.04);
  REQUIRE(one_by_one.epsilon(1e-5) == Approx(7.32911117143).epsilon(1e-6));
  const auto [eps, order] = accountant.epsilon_and_order(1e-5);
  REQUIRE(eps == accountant.epsilon(1e-5));
  REQUIRE(order > 1.0);
  REQUIRE(std::find(accountant.orders().begin(), accountant.orders().end(), order) != accountant.orders().end());
}

TEST_CASE("RdpAccountant RDP values: sigma 2.5, q 0.01, 50 steps", "[privacy][rdp]") {
  RdpAccountant accountant({1.5, 2.5, 5.0, 50.0, 100.0});
  accountant.step(2.5, 0.01, 50);
  const std::vector<double> rdp = accountant.rdp();
  // Reference values to 5 significant digits: within half a unit of the last digit.
  const std::vector<std::pair<double, double>> expected{
      {6.5007e-4, 0.5e-8}, {1.0854e-3, 0.5e-7}, {2.1808e-3, 0.5e-7}, {2.3846e-2, 0.5e-6}, {167.42, 0.5e-2}};
  REQUIRE(rdp.size() == expected.size());
  for (std::size_t k = 0; k < rdp.size(); ++k) {
    INFO("order " << accountant.orders()[k] << " rdp " << rdp[k]);
    REQUIRE(std::abs(rdp[k] - expected[k].first) <= expected[k].second);
  }
}

TEST_CASE("Default orders are Opacus's", "[privacy][rdp]") {
  const RdpAccountant accountant;
  const auto& orders = accountant.orders();
  REQUIRE(orders.size() == 99 + 52);
  REQUIRE(orders.front() == Approx(1.1));
  REQUIRE(orders[98] == Approx(10.9));
  REQUIRE(orders[99] == 12.0);
  REQUIRE(orders.back() == 63.0);
  REQUIRE(orders[9] == 2.0);  // exactly integer, so it takes the binomial sum
  REQUIRE(accountant.epsilon(1e-5) == 0.0);  // nothing spent yet
}

TEST_CASE("Special sampling rates and the two series agree with the binomial sum", "[privacy][rdp]") {
  for (double sigma : {0.7, 1.0, 3.0}) {
    for (double alpha : {1.5, 2.0, 7.3, 32.0}) {
      REQUIRE(sampled_gaussian_rdp(sigma, 1.0, alpha) == Approx(alpha / (2.0 * sigma * sigma)));
      REQUIRE(sampled_gaussian_rdp(sigma, 0.0, alpha) == 0.0);
    }
    // Fractional orders next to integers take the erfc series; RDP is continuous in α.
    for (double q : {0.001, 0.05, 0.3, 0.9}) {
      for (double alpha : {2.0, 3.0, 10.0}) {
        const double exact = sampled_gaussian_rdp(sigma, q, alpha);
        INFO("sigma " << sigma << " q " << q << " alpha " << alpha);
        REQUIRE(exact > 0.0);
        REQUIRE(sampled_gaussian_rdp(sigma, q, alpha + 1e-7) == Approx(exact).epsilon(1e-5));
        REQUIRE(sampled_gaussian_rdp(sigma, q, alpha - 1e-7) == Approx(exact).epsilon(1e-5));
      }
    }
  }
  // Subsampling amplifies privacy: RDP grows with q, and stays below the unsampled mechanism.
  double previous = 0.0;
  for (double q : {1e-4, 1e-3, 0.01, 0.1, 0.5, 0.99}) {
    const double value = sampled_gaussian_rdp(1.2, q, 4.5);
    REQUIRE(value > previous);
    REQUIRE(value < 4.5 / (2.0 * 1.2 * 1.2));
    previous = value;
  }
}

TEST_CASE("RDP composes by addition over steps and phases", "[privacy][rdp]") {
  const std::vector<std::tuple<double, double, long, long>> cases{
      {1.1, 0.01, 100, 250}, {3.0, 0.2, 1, 1}, {0.8, 0.5, 7, 1000}};
  for (const auto& [sigma, q, a, b] : cases) {
    RdpAccountant split, joined;
    split.step(sigma, q, a);
    split.step(sigma, q, b);
    joined.step(sigma, q, a + b);
    const auto s = split.rdp();
    const auto j = joined.rdp();
    for (std::size_t k = 0; k < s.size(); ++k) REQUIRE(s[k] == Approx(j[k]).epsilon(1e-12));
    REQUIRE(split.epsilon(1e-6) == Approx(joined.epsilon(1e-6)).epsilon(1e-12));
  }
  // Two phases with different (σ, q): the RDP of the whole is the sum of the phases'.
  RdpAccountant both, first, second;
  both.step(1.0, 0.02, 300);
  both.step(2.0, 0.1, 50);
  first.step(1.0, 0.02, 300);
  second.step(2.0, 0.1, 50);
  for (std::size_t k = 0; k < both.rdp().size(); ++k) {
    REQUIRE(both.rdp()[k] == Approx(first.rdp()[k] + second.rdp()[k]).epsilon(1e-12));
  }
  REQUIRE(both.epsilon(1e-5) > first.epsilon(1e-5));
  REQUIRE(both.epsilon(1e-5) > second.epsilon(1e-5));
  // Zero steps, or a phase that samples nobody, spends nothing.
  RdpAccountant none;
  none.step(1.0, 0.5, 0);
  none.step(1.0, 0.0, 1000);
  REQUIRE(none.epsilon(1e-5) == 0.0);
}

TEST_CASE("Epsilon decreases with noise and grows with steps and sampling rate", "[privacy][rdp]") {
  double previous = std::numeric_limits<double>::infinity();
  for (double sigma : {0.5, 0.8, 1.0, 1.5, 2.0, 4.0, 8.0}) {
    RdpAccountant accountant;
    accountant.step(sigma, 0.01, 1000);
    const double eps = accountant.epsilon(1e-5);
    INFO("sigma " << sigma);
    REQUIRE(eps < previous);
    previous = eps;
  }
  previous = 0.0;
  for (long steps : {1L, 10L, 100L, 1000L, 10000L}) {
    RdpAccountant accountant;
    accountant.step(1.0, 0.01, steps);
    const double eps = accountant.epsilon(1e-5);
    REQUIRE(eps > previous);
    previous = eps;
  }
  RdpAccountant accountant;
  accountant.step(1.0, 0.01, 1000);
  REQUIRE(accountant.epsilon(1e-3) < accountant.epsilon(1e-5));
}

TEST_CASE("A million steps is one multiplication of the per-step RDP", "[privacy][rdp]") {
  RdpAccountant once, million;
  once.step(1.1, 0.001, 1);
  million.step(1.1, 0.001, 1'000'000);
  std::vector<double> scaled = once.rdp();
  for (double& v : scaled) v *= 1e6;
  const auto got = million.rdp();
  for (std::size_t k = 0; k < got.size(); ++k) REQUIRE(got[k] == Approx(scaled[k]).epsilon(1e-14));
  const double eps = million.epsilon(1e-5);
  REQUIRE(eps == Approx(epsilon_from_rdp(million.orders(), scaled, 1e-5).first).epsilon(1e-14));
  // And by the conversion formula itself, minimised by hand.
  double by_hand = std::numeric_limits<double>::infinity();
  for (std::size_t k = 0; k < scaled.size(); ++k) {
    const double alpha = million.orders()[k];
    by_hand = std::min(by_hand, scaled[k] - (std::log(1e-5) + std::log(alpha)) / (alpha - 1.0) +
                                    std::log((alpha - 1.0) / alpha));
  }
  REQUIRE(eps == Approx(by_hand).epsilon(1e-14));
  REQUIRE(eps > once.epsilon(1e-5));
}

TEST_CASE("find_noise_multiplier meets the target epsilon", "[privacy][rdp]") {
  const double rtol = 1e-6;
  const std::vector<std::tuple<double, double, double, long>> cases{
      {8.0, 1e-5, 0.04, 2000}, {1.0, 1e-5, 0.01, 5000}, {3.0, 1e-6, 0.001, 100000}, {0.5, 1e-5, 1.0, 10}};
  for (const auto& [target, delta, q, steps] : cases) {
    const double sigma = find_noise_multiplier(target, delta, q, steps);
    INFO("target " << target << " sigma " << sigma);
    RdpAccountant at, below;
    at.step(sigma, q, steps);
    below.step(sigma * (1.0 - 3.0 * rtol), q, steps);
    REQUIRE(at.epsilon(delta) <= target);
    REQUIRE(below.epsilon(delta) > target);
    REQUIRE(at.epsilon(delta) == Approx(target).epsilon(1e-4));
  }
  // Opacus's get_noise_multiplier (ε tolerance 0.01) gives 1.3562 for the first case and 1.416
  // for 90 epochs at q = 0.04; the exact σ is a little smaller than their overshooting answer.
  REQUIRE(find_noise_multiplier(8.0, 1e-5, 0.04, 2000) == Approx(1.3562).margin(2e-3));
  REQUIRE(find_noise_multiplier(8.0, 1e-5, 0.04, 2250) == Approx(1.416).margin(2e-3));
  // A looser tolerance still meets the target.
  const double coarse = find_noise_multiplier(2.0, 1e-5, 0.02, 3000, default_rdp_orders(), 1e-2);
  RdpAccountant accountant;
  accountant.step(coarse, 0.02, 3000);
  REQUIRE(accountant.epsilon(1e-5) <= 2.0);
  REQUIRE(accountant.epsilon(1e-5) > 1.9);
}

TEST_CASE("Accountant and noise search reject bad parameters, naming them", "[privacy][rdp][errors]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  RdpAccountant accountant;
  for (double sigma : {0.0, -1.0, nan, std::numeric_limits<double>::infinity()}) {
    REQUIRE_THROWS_AS(accountant.step(sigma, 0.1), ConfigError);
    REQUIRE_THROWS_WITH(accountant.step(sigma, 0.1), Contains("noise_multiplier"));
  }
  for (double q : {-0.1, 1.5, nan}) REQUIRE_THROWS_WITH(accountant.step(1.0, q), Contains("sample_rate"));
  REQUIRE_THROWS_WITH(accountant.step(1.0, 0.1, -1), Contains("steps"));
  for (double delta : {0.0, 1.0, -1e-5, 2.0, nan}) {
    REQUIRE_THROWS_WITH(accountant.epsilon(delta), Contains("delta"));
    REQUIRE_THROWS_WITH(accountant.epsilon_and_order(delta), Contains("delta"));
  }
  REQUIRE(accountant.epsilon(1e-5) == 0.0);  // the failed calls spent nothing
  REQUIRE_THROWS_WITH(RdpAccountant(std::vector<double>{2.0, 1.0}), Contains("order"));
  REQUIRE_THROWS_WITH(RdpAccountant(std::vector<double>{0.5}), Contains("order"));
  REQUIRE_THROWS_WITH(RdpAccountant(std::vector<double>{}), Contains("orders"));
  REQUIRE_THROWS_WITH(sampled_gaussian_rdp(1.0, 0.1, 1.0), Contains("order"));

  REQUIRE_THROWS_WITH(find_noise_multiplier(0.0, 1e-5, 0.01, 100), Contains("target_epsilon"));
  REQUIRE_THROWS_WITH(find_noise_multiplier(1.0, 0.0, 0.01, 100), Contains("delta"));
  REQUIRE_THROWS_WITH(find_noise_multiplier(1.0, 1e-5, 0.0, 100), Contains("sample_rate"));
  REQUIRE_THROWS_WITH(find_noise_multiplier(1.0, 1e-5, 0.01, 0), Contains("steps"));
  REQUIRE_THROWS_WITH(find_noise_multiplier(1.0, 1e-5, 0.01, 100, default_rdp_orders(), 0.0),
                      Contains("relative_tolerance"));
  // With orders up to 63 and δ = 1e-5 the conversion alone costs ε ≈ 0.103: 0.05 is unreachable.
  REQUIRE_THROWS_WITH(find_noise_multiplier(0.05, 1e-5, 0.01, 100), Contains("unreachable"));
}

TEST_CASE("RDP orders are capped: an order of 1e9 is refused at once, not summed for 43 s", "[privacy][rdp][errors]") {
  // An order α costs about α terms per (σ, q); without a cap RdpAccountant({1e9}) was accepted and
  // its first step() ran for 43 s. Integer and fractional orders share the cap.
  for (double alpha : {1e9, 1e4 + 1.0, 1e4 + 0.5, 4.5e15}) {
    CAPTURE(alpha);
    REQUIRE_THROWS_AS(RdpAccountant(std::vector<double>{2.0, alpha}), ConfigError);
    REQUIRE_THROWS_WITH(RdpAccountant(std::vector<double>{2.0, alpha}), Contains("order") && Contains("10000"));
    REQUIRE_THROWS_WITH(sampled_gaussian_rdp(1.0, 0.01, alpha), Contains("order"));
    REQUIRE_THROWS_WITH(find_noise_multiplier(1.0, 1e-5, 0.01, 100, {2.0, alpha}), Contains("order"));
  }
  // The cap itself is accepted and cheap (about 10⁴ terms).
  RdpAccountant at_cap(std::vector<double>{2.0, 1e4});
  at_cap.step(1.0, 0.01, 100);
  REQUIRE(std::isfinite(at_cap.epsilon(1e-5)));
}
