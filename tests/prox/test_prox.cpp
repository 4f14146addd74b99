// Tests for decopt/prox: closed forms, optimality (prox is the argmin), Moreau decomposition,
// group zeroing, parameter validation; float and double.
#include <catch2/catch.hpp>

#include <decopt/core/rng.hpp>
#include <decopt/prox/prox.hpp>

#include <cmath>
#include <limits>
#include <vector>

using namespace decopt;
using Catch::Matchers::Contains;

namespace {

template <class T>
std::vector<T> random_vector(std::size_t n, std::uint64_t seed, double scale = 2.0) {
  Rng rng(seed);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(scale * (2.0 * rng.uniform() - 1.0));
  return v;
}

template <class T>
constexpr double tolerance() {
  return std::is_same_v<T, float> ? 2e-6 : 1e-13;
}

/// Minimises the 1-D convex function f on [lo, hi] by golden-section search (to ~1e-12).
template <class F>
double golden_min(F f, double lo, double hi) {
  const double r = (std::sqrt(5.0) - 1.0) / 2.0;
  double a = lo, b = hi, c = b - r * (b - a), d = a + r * (b - a);
  for (int it = 0; it < 200; ++it) {
    if (f(c) < f(d)) b = d;
    else a = c;
    c = b - r * (b - a);
    d = a + r * (b - a);
  }
  return 0.5 * (a + b);
}

}  // namespace


TEST_CASE("proximal operators satisfy the concept and state their traits", "[prox]") {
  STATIC_REQUIRE(ProximalOperator<NoProx>);
  STATIC_REQUIRE(ProximalOperator<L1Prox>);
  STATIC_REQUIRE(ProximalOperator<ElasticNetProx>);
  STATIC_REQUIRE(ProximalOperator<GroupL1Prox>);
  STATIC_REQUIRE_FALSE(ProximalOperator<int>);
  STATIC_REQUIRE(NoProx::is_identity);
  STATIC_REQUIRE_FALSE(L1Prox::is_identity);
  STATIC_REQUIRE_FALSE(ElasticNetProx::is_identity);
  STATIC_REQUIRE_FALSE(GroupL1Prox::is_identity);
  STATIC_REQUIRE_FALSE(NoProx::promotes_sparsity);
  STATIC_REQUIRE(L1Prox::promotes_sparsity);
  STATIC_REQUIRE(ElasticNetProx::promotes_sparsity);
  STATIC_REQUIRE(GroupL1Prox::promotes_sparsity);
}

TEMPLATE_TEST_CASE("step 0 is the identity and NoProx does nothing", "[prox]", float, double) {
  const auto x0 = random_vector<TestType>(1001, 1);
  auto check = [&](const auto& prox, double step) {
    auto x = x0;
    prox.apply(std::span<TestType>(x), step);
    REQUIRE(x == x0);
  };
  check(NoProx{}, 0.0);
  check(NoProx{}, 3.0);
  check(L1Prox(0.7), 0.0);
  check(ElasticNetProx(0.7, 2.0), 0.0);
  check(GroupL1Prox(0.7, 10), 0.0);
  check(L1Prox(0.0), 5.0);                // λ = 0 as well
  check(ElasticNetProx(0.0, 0.0), 5.0);
  check(GroupL1Prox(0.0, 3), 5.0);
  REQUIRE(NoProx{}.value(std::span<const TestType>(x0)) == 0.0);
}

TEMPLATE_TEST_CASE("L1 and elastic net equal their closed forms", "[prox]", float, double) {
  std::vector<TestType> x{TestType(3), TestType(-3), TestType(0.5), TestType(-0.5), TestType(1), TestType(0), TestType(-1.25)};
  auto l1 = x;
  L1Prox{0.5}.apply(std::span<TestType>(l1), 2.0);  // τ = 1
  const std::vector<TestType> l1_expected{TestType(2), TestType(-2), 0, 0, 0, 0, TestType(-0.25)};
  REQUIRE(l1 == l1_expected);
  for (TestType v : l1) REQUIRE_FALSE((std::signbit(v) && v == 0));  // zeros are +0

  auto en = x;
  ElasticNetProx(0.5, 1.5).apply(std::span<TestType>(en), 2.0);  // τ = 1, divide by 1 + 3
  for (std::size_t k = 0; k < x.size(); ++k) REQUIRE(en[k] == Approx(l1_expected[k] / 4.0).margin(1e-7));

  // Random inputs against sign(x)·max(|x| − τ, 0) evaluated in double.
  const auto r = random_vector<TestType>(4097, 2);
  for (double step : {0.01, 0.3, 1.0}) {
    auto a = r, b = r;
    L1Prox(0.8).apply(std::span<TestType>(a), step);
    ElasticNetProx(0.8, 0.6).apply(std::span<TestType>(b), step);
    const double tau = static_cast<double>(static_cast<TestType>(step * 0.8));
    for (std::size_t k = 0; k < r.size(); ++k) {
      const double soft = std::copysign(std::max(std::abs(double(r[k])) - tau, 0.0), double(r[k]));
      REQUIRE(double(a[k]) == Approx(soft).margin(tolerance<TestType>()));
      REQUIRE(double(b[k]) == Approx(soft / (1.0 + step * 0.6)).margin(tolerance<TestType>()));
    }
  }
}

TEMPLATE_TEST_CASE("prox is the argmin of R(z) + |z - x|^2 / (2t)", "[prox]", float, double) {
  // Separable operators: compare each coordinate with a brute-force 1-D minimisation.
  const auto x = random_vector<TestType>(200, 3);
  const double step = 0.37;
  const double tol = std::is_same_v<TestType, float> ? 1e-5 : 1e-8;
  {
    const L1Prox prox(1.3);
    auto z = x;
    prox.apply(std::span<TestType>(z), step);
    for (std::size_t k = 0; k < x.size(); ++k) {
      const double xk = x[k];
      const double best = golden_min([&](double v) { return 1.3 * std::abs(v) + (v - xk) * (v - xk) / (2 * step); }, -4, 4);
      REQUIRE(double(z[k]) == Approx(best).margin(tol));
    }
  }
  {
    const ElasticNetProx prox(0.9, 2.5);
    auto z = x;
    prox.apply(std::span<TestType>(z), step);
    for (std::size_t k = 0; k < x.size(); ++k) {
      const double xk = x[k];
      const double best = golden_min(
          [&](double v) { return 0.9 * std::abs(v) + 1.25 * v * v + (v - xk) * (v - xk) / (2 * step); }, -4, 4);
      REQUIRE(double(z[k]) == Approx(best).margin(tol));
    }
  }
  // Group lasso: check the optimality condition 0 ∈ ∂R(z) + (z − x)/t for every group:
  // z_g ≠ 0 ⇒ (x_g − z_g)/t = λ z_g/‖z_g‖;  z_g = 0 ⇒ ‖x_g‖/t ≤ λ.
  // And the objective is not improved by random perturbations.
  {
    const double lambda = 1.1;
    const std::size_t gs = 7;  // 200 = 28·7 + 4: a short last group
    const GroupL1Prox prox(lambda, gs);
    auto z = x;
    prox.apply(std::span<TestType>(z), step);
    for (std::size_t s = 0; s < x.size(); s += gs) {
      const std::size_t len = std::min(gs, x.size() - s);
      double zn = 0, xn = 0;
      for (std::size_t k = s; k < s + len; ++k) {
        zn += double(z[k]) * double(z[k]);
        xn += double(x[k]) * double(x[k]);
      }
      zn = std::sqrt(zn);
      xn = std::sqrt(xn);
      if (zn == 0.0) {
        REQUIRE(xn / step <= lambda + 1e-12);
      } else {
        for (std::size_t k = s; k < s + len; ++k)
          REQUIRE((double(x[k]) - double(z[k])) / step == Approx(lambda * double(z[k]) / zn).margin(tol * 10));
      }
    }
    auto objective = [&](const std::vector<double>& v) {
      double reg = 0, fit = 0;
      for (std::size_t s = 0; s < v.size(); s += gs) {
        double n2 = 0;
        for (std::size_t k = s; k < std::min(v.size(), s + gs); ++k) n2 += v[k] * v[k];
        reg += std::sqrt(n2);
      }
      for (std::size_t k = 0; k < v.size(); ++k) fit += (v[k] - double(x[k])) * (v[k] - double(x[k]));
      return lambda * reg + fit / (2 * step);
    };
    const std::vector<double> zd(z.begin(), z.end());
    const double f0 = objective(zd);
    Rng rng(4);
    for (int trial = 0; trial < 50; ++trial) {
      auto p = zd;
      for (auto& v : p) v += 1e-3 * (2 * rng.uniform() - 1);
      REQUIRE(objective(p) >= f0 - 1e-9);
    }
  }
}

TEMPLATE_TEST_CASE("Moreau decomposition of the l1 prox", "[prox]", float, double) {
  // x = prox_{tλ‖·‖₁}(x) + tλ · proj_{‖·‖∞ ≤ 1}(x / (tλ)), i.e. x − prox(x) = clamp(x, −tλ, tλ).
  const auto x = random_vector<TestType>(10000, 5, 3.0);
  for (double step : {0.1, 0.5, 2.0}) {
    const double lambda = 0.75;
    auto p = x;
    L1Prox(lambda).apply(std::span<TestType>(p), step);
    const double tl = static_cast<double>(static_cast<TestType>(step * lambda));
    for (std::size_t k = 0; k < x.size(); ++k) {
      const double proj = std::clamp(double(x[k]) / tl, -1.0, 1.0);
      REQUIRE(double(p[k]) + tl * proj == Approx(double(x[k])).margin(tolerance<TestType>() * 4));
    }
  }
}

TEMPLATE_TEST_CASE("group prox zeroes exactly the groups with norm <= t*lambda", "[prox]", float, double) {
  // Hand-made groups of 2 with norms 5, 1, 5 (boundary: τ = 5), 0, and a short last group of norm 3.
  std::vector<TestType> x{TestType(3), TestType(4), TestType(0.6), TestType(0.8), TestType(-4), TestType(3),
                          TestType(0), TestType(0), TestType(-3)};
  const GroupL1Prox boundary(2.5, 2);
  auto z = x;
  boundary.apply(std::span<TestType>(z), 2.0);  // τ = 5
  for (TestType v : z) REQUIRE(v == 0);
  z = x;
  GroupL1Prox(1.0, 2).apply(std::span<TestType>(z), 2.0);  // τ = 2: keeps groups 0, 2, 4 scaled by 1 − 2/‖x_g‖
  const std::vector<double> expected{3 * 0.6, 4 * 0.6, 0, 0, -4 * 0.6, 3 * 0.6, 0, 0, -3 * (1 - 2.0 / 3)};
  for (std::size_t k = 0; k < x.size(); ++k) REQUIRE(double(z[k]) == Approx(expected[k]).margin(1e-6));
  REQUIRE(GroupL1Prox(1.0, 2).value(std::span<const TestType>(x)) == Approx(5 + 1 + 5 + 0 + 3).epsilon(1e-6));

  // Random groups: zero iff ‖x_g‖ ≤ τ, otherwise a positive multiple of x_g.
  const auto r = random_vector<TestType>(3001, 6);
  for (std::size_t gs : {1, 3, 16, 100}) {
    const double step = 0.5, lambda = 2.3 * std::sqrt(double(gs));  // τ ≈ the median group norm
    auto y = r;
    GroupL1Prox(lambda, gs).apply(std::span<TestType>(y), step);
    int zeroed = 0, kept = 0;
    for (std::size_t s = 0; s < r.size(); s += gs) {
      const std::size_t len = std::min(gs, r.size() - s);
      double norm = 0;
      for (std::size_t k = s; k < s + len; ++k) norm += double(r[k]) * double(r[k]);
      norm = std::sqrt(norm);
      const bool all_zero = std::all_of(y.begin() + long(s), y.begin() + long(s + len), [](TestType v) { return v == 0; });
      if (norm <= step * lambda) {
        REQUIRE(all_zero);
        ++zeroed;
      } else {
        REQUIRE_FALSE(all_zero);
        ++kept;
        const double scale = 1.0 - step * lambda / norm;
        for (std::size_t k = s; k < s + len; ++k) REQUIRE(double(y[k]) == Approx(scale * double(r[k])).margin(tolerance<TestType>()));
      }
    }
    REQUIRE(zeroed > 0);  // the test exercises both branches
    REQUIRE(kept > 0);
  }
  // group_size 1 is the l1 prox.
  auto g1 = r, l1 = r;
  GroupL1Prox(0.4, 1).apply(std::span<TestType>(g1), 0.9);
  L1Prox(0.4).apply(std::span<TestType>(l1), 0.9);
  for (std::size_t k = 0; k < r.size(); ++k) REQUIRE(double(g1[k]) == Approx(double(l1[k])).margin(tolerance<TestType>()));
}

TEMPLATE_TEST_CASE("regulariser values", "[prox]", float, double) {
  const std::vector<TestType> x{TestType(1), TestType(-2), TestType(0.5), TestType(0)};
  const std::span<const TestType> s(x);
  REQUIRE(L1Prox(2.0).value(s) == Approx(7.0));
  REQUIRE(ElasticNetProx(2.0, 4.0).value(s) == Approx(7.0 + 2.0 * (1 + 4 + 0.25)));
  REQUIRE(GroupL1Prox(1.0, 2).value(s) == Approx(std::sqrt(5.0) + 0.5));
  REQUIRE(GroupL1Prox(1.0, 3).value(s) == Approx(std::sqrt(5.25) + 0.0));
  // The prox never increases R (for these operators R(prox(x)) ≤ R(x)).
  auto y = random_vector<TestType>(500, 8);
  const auto y0 = y;
  const GroupL1Prox g(0.3, 5);
  g.apply(std::span<TestType>(y), 1.0);
  REQUIRE(g.value(std::span<const TestType>(y)) < g.value(std::span<const TestType>(y0)));
}

TEST_CASE("bad prox parameters are ConfigErrors naming the parameter", "[prox][validation]") {
  REQUIRE_THROWS_WITH(L1Prox(-0.1), Contains("L1Prox") && Contains("lambda"));
  REQUIRE_THROWS_WITH(L1Prox(std::numeric_limits<double>::infinity()), Contains("lambda"));
  REQUIRE_THROWS_WITH(ElasticNetProx(-1.0, 0.0), Contains("ElasticNetProx") && Contains("l1"));
  REQUIRE_THROWS_WITH(ElasticNetProx(0.0, -1.0), Contains("l2"));
  REQUIRE_THROWS_WITH(GroupL1Prox(-1.0, 3), Contains("GroupL1Prox") && Contains("lambda"));
  REQUIRE_THROWS_WITH(GroupL1Prox(1.0, 0), Contains("group_size"));
  std::vector<float> x(4, 1.0f);
  REQUIRE_THROWS_WITH(L1Prox(1.0).apply(std::span<float>(x), -1.0), Contains("L1Prox") && Contains("step"));
  REQUIRE_THROWS_WITH(ElasticNetProx(1.0, 1.0).apply(std::span<float>(x), -1e-9), Contains("step"));
  REQUIRE_THROWS_WITH(GroupL1Prox(1.0, 2).apply(std::span<float>(x), std::nan("")), Contains("step"));
  REQUIRE_THROWS_WITH(NoProx{}.apply(std::span<float>(x), -2.0), Contains("step"));
  // A default-constructed aggregate that was mutated is re-validated by apply.
  L1Prox mutated;
  mutated.lambda = -3.0;
  REQUIRE_THROWS_WITH(mutated.apply(std::span<float>(x), 1.0), Contains("lambda"));
  REQUIRE_THROWS_AS(L1Prox(-1.0), ConfigError);
  REQUIRE(x == std::vector<float>(4, 1.0f));  // failed calls left the buffer alone
}
