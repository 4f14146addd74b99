// Tests for decopt/topology: generators, weight rules, validation, spectral gap, time-varying
// sequences.
#include <catch2/catch.hpp>

#include <decopt/topology/topology_all.hpp>

#include "mixing_checks.hpp"

#include <cmath>
#include <numbers>
#include <set>
#include <vector>

using namespace decopt;
using Catch::Matchers::Contains;

namespace {

/// Symmetric, doubly stochastic, non-negative, positive diagonal, connected; and the sparse rows
/// agree with matrix().
void check_mixing_matrix(const Topology& t) {
  INFO(t.name());
  const Eigen::MatrixXd W = t.matrix();
  const int n = t.size();
  test::check_doubly_stochastic(W, n);
  for (int i = 0; i < n; ++i) {
    REQUIRE(t.self_weight(i) == W(i, i));
    const auto nb = t.neighbors(i);
    REQUIRE(static_cast<int>(nb.size()) == t.degree(i));
    int nonzero_off_diagonal = 0;
    for (int j = 0; j < n; ++j)
      if (j != i && W(i, j) > 0.0) ++nonzero_off_diagonal;
    REQUIRE(nonzero_off_diagonal == t.degree(i));
    for (std::size_t k = 0; k < nb.size(); ++k) {
      REQUIRE(nb[k].node != i);
      REQUIRE(nb[k].weight > 0.0);
      REQUIRE(t.weight(i, nb[k].node) == nb[k].weight);
      if (k > 0) REQUIRE(nb[k - 1].node < nb[k].node);
    }
  }
  // Connected: W^n has no zero entry iff the (aperiodic) graph is connected; use reachability.
  std::vector<int> seen(static_cast<std::size_t>(n), 0), stack{0};
  seen[0] = 1;
  int reached = 1;
  while (!stack.empty()) {
    const int v = stack.back();
    stack.pop_back();
    for (const Edge& e : t.neighbors(v))
      if (!seen[static_cast<std::size_t>(e.node)]) {
        seen[static_cast<std::size_t>(e.node)] = 1;
        ++reached;
        stack.push_back(e.node);
      }
  }
  REQUIRE(reached == n);
  // Re-validating the dense matrix gives the same topology.
  REQUIRE(Topology::from_matrix(W).fingerprint() == t.fingerprint());
}

/// Two complete graphs K_k joined by one edge: λ2 very close to 1 but well separated from λ3.
Topology barbell(int k) {
  std::vector<std::pair<int, int>> edges;
  for (int side = 0; side < 2; ++side)
    for (int i = 0; i < k; ++i)
      for (int j = i + 1; j < k; ++j) edges.emplace_back(side * k + i, side * k + j);
  edges.emplace_back(k - 1, k);
  return Topology::from_edges(2 * k, edges);
}

/// The path 0–1–…–(n−1): degrees 1 and 2, so Metropolis–Hastings gives non-uniform rows.
Topology path(int n) {
  std::vector<std::pair<int, int>> edges;
  for (int i = 0; i + 1 < n; ++i) edges.emplace_back(i, i + 1);
  return Topology::from_edges(n, edges);
}

double ring_eigenvalue(int n, int k) { return 1.0 / 3.0 + 2.0 / 3.0 * std::cos(2.0 * std::numbers::pi * k / n); }

}  // namespace

TEST_CASE("every generator gives a symmetric doubly stochastic connected W", "[topology]") {
  for (WeightRule rule : {WeightRule::MetropolisHastings, WeightRule::MaxDegree}) {
    for (int n : {1, 2, 3, 4, 7, 16}) {
      check_mixing_matrix(Topology::ring(n, rule));
      check_mixing_matrix(Topology::complete(n, rule));
      check_mixing_matrix(Topology::star(n, rule));
      check_mixing_matrix(Topology::exponential(n, rule));
      check_mixing_matrix(Topology::erdos_renyi(n, 0.5, 11, rule));
    }
    for (int dim : {0, 1, 2, 5}) check_mixing_matrix(Topology::hypercube(dim, rule));
    for (auto [r, c] : {std::pair{1, 1}, {1, 5}, {2, 2}, {2, 3}, {3, 3}, {4, 6}})
      check_mixing_matrix(Topology::torus(r, c, rule));
    check_mixing_matrix(Topology::from_edges(5, std::vector<std::pair<int, int>>{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {1, 3}}, rule));
  }
}

TEST_CASE("degrees are those of the named graphs", "[topology]") {
  const auto ring = Topology::ring(10);
  for (int i = 0; i < 10; ++i) REQUIRE(ring.degree(i) == 2);
  REQUIRE(ring.edge_count() == 10);
  REQUIRE(Topology::ring(2).degree(0) == 1);
  REQUIRE(Topology::ring(1).degree(0) == 0);
  REQUIRE(Topology::ring(1).matrix()(0, 0) == 1.0);

  const auto torus = Topology::torus(3, 5);
  for (int i = 0; i < 15; ++i) REQUIRE(torus.degree(i) == 4);
  REQUIRE(Topology::torus(2, 2).max_degree() == 2);
  REQUIRE(Topology::torus(1, 6).matrix() == Topology::ring(6).matrix());

  const auto cube = Topology::hypercube(4);
  REQUIRE(cube.size() == 16);
  for (int i = 0; i < 16; ++i) {
    REQUIRE(cube.degree(i) == 4);
    for (const Edge& e : cube.neighbors(i)) REQUIRE(std::popcount(static_cast<unsigned>(i ^ e.node)) == 1);
  }

  const auto full = Topology::complete(6);
  for (int i = 0; i < 6; ++i) REQUIRE(full.degree(i) == 5);

  const auto star = Topology::star(6);
  REQUIRE(star.degree(0) == 5);
  for (int i = 1; i < 6; ++i) REQUIRE(star.degree(i) == 1);
  REQUIRE(star.max_degree() == 5);

  const auto expo = Topology::exponential(16);
  for (int i = 0; i < 16; ++i) {
    std::set<int> expected;
    for (int s = 1; s < 16; s *= 2) {
      expected.insert((i + s) % 16);
      expected.insert((i - s + 16) % 16);
    }
    std::set<int> got;
    for (const Edge& e : expo.neighbors(i)) got.insert(e.node);
    REQUIRE(got == expected);  // ±1, ±2, ±4, +8 ≡ −8: 7 neighbours
    REQUIRE(expo.degree(i) == 7);
  }
}

TEST_CASE("weight rules give the documented weights", "[topology]") {
  // Metropolis–Hastings on the complete graph is exact averaging: every entry is 1.0/n.
  for (int n : {1, 3, 7, 10}) {
    const Eigen::MatrixXd W = Topology::complete(n).matrix();
    REQUIRE((W.array() == 1.0 / n).all());
  }
  // Ring: 1/3 everywhere on the band.
  const auto ring = Topology::ring(9);
  for (int i = 0; i < 9; ++i) {
    REQUIRE(ring.self_weight(i) == 1.0 / 3.0);
    for (const Edge& e : ring.neighbors(i)) REQUIRE(e.weight == 1.0 / 3.0);
  }
  // Star, Metropolis–Hastings: every edge 1/n (max(deg) = n − 1), the hub keeps 1/n, a leaf 1 − 1/n.
  const auto star = Topology::star(5);
  REQUIRE(star.weight(0, 3) == 1.0 / 5.0);
  REQUIRE(star.self_weight(0) == Approx(1.0 / 5.0));
  REQUIRE(star.self_weight(2) == Approx(4.0 / 5.0));
  REQUIRE(star.weight(1, 2) == 0.0);
  // Irregular graph (path 0–1–2–3 plus 1–3): MH uses the larger endpoint degree.
  const std::vector<std::pair<int, int>> edges{{0, 1}, {1, 2}, {2, 3}, {3, 1}, {1, 0}};  // duplicate merges
  const auto g = Topology::from_edges(4, edges);
  REQUIRE(g.degree(1) == 3);
  REQUIRE(g.weight(0, 1) == 1.0 / 4.0);
  REQUIRE(g.weight(2, 3) == 1.0 / 3.0);
  REQUIRE(g.self_weight(0) == 3.0 / 4.0);
  REQUIRE(g.self_weight(3) == Approx(1.0 - 1.0 / 4.0 - 1.0 / 3.0));
  // Max degree: uniform 1/(1 + Δ).
  const auto gm = Topology::from_edges(4, edges, WeightRule::MaxDegree);
  REQUIRE(gm.weight(2, 3) == 1.0 / 4.0);
  REQUIRE(gm.self_weight(0) == 3.0 / 4.0);
  REQUIRE(gm.self_weight(1) == 1.0 / 4.0);
  REQUIRE(gm.name() == "graph(4 nodes, max-degree)");
}

TEST_CASE("names", "[topology]") {
  REQUIRE(Topology::ring(8).name() == "ring(8)");
  REQUIRE(Topology::torus(3, 4).name() == "torus(3x4)");
  REQUIRE(Topology::hypercube(3, WeightRule::MaxDegree).name() == "hypercube(3, max-degree)");
  REQUIRE(Topology::erdos_renyi(10, 0.5, 3).name() == "erdos_renyi(10, 0.5, seed 3)");
  REQUIRE(Topology::from_matrix(Eigen::MatrixXd::Constant(2, 2, 0.5)).name() == "matrix(2)");
}

TEST_CASE("spectral gap matches closed forms", "[topology][spectral]") {
  for (int n : {3, 5, 8, 30, 101}) {
    INFO("ring " << n);
    // λ_k = 1/3 + 2/3·cos(2πk/n): λ2 at k = 1, λn at k = ⌊n/2⌋.
    const double slem = std::max(std::abs(ring_eigenvalue(n, 1)), std::abs(ring_eigenvalue(n, n / 2)));
    const auto ring = Topology::ring(n);
    REQUIRE(ring.second_largest_eigenvalue_modulus() == Approx(slem).epsilon(1e-12).margin(1e-14));
    REQUIRE(ring.spectral_gap() == Approx(1.0 - slem).epsilon(1e-10));
    REQUIRE(ring.extremes().lambda2 == Approx(ring_eigenvalue(n, 1)).epsilon(1e-12).margin(1e-14));
  }
  for (int n : {2, 5, 40}) REQUIRE(Topology::complete(n).spectral_gap() == Approx(1.0).margin(1e-12));
  REQUIRE(Topology::ring(1).spectral_gap() == 1.0);
  REQUIRE(Topology::ring(2).spectral_gap() == Approx(1.0).margin(1e-12));  // W = 11ᵀ/2
  // Hypercube with MH weights 1/(d+1): W = (I + Σ_k P_k)/(d+1), eigenvalues (d + 1 − 2j)/(d+1),
  // so λ2 = (d − 1)/(d + 1) = −λn and δ = 2/(d + 1).
  for (int d : {1, 2, 3, 6}) REQUIRE(Topology::hypercube(d).spectral_gap() == Approx(2.0 / (d + 1)).epsilon(1e-12));
  // Star with MH weights 1/n: λ2 = 1 − 1/n (leaves), λn = 0 → δ = 1/n.
  REQUIRE(Topology::star(12).spectral_gap() == Approx(1.0 / 12).epsilon(1e-10));
  // Torus = Kronecker sum of two rings (MH 1/5): λ = 1/5 + 2/5 cos(2πa/r) + 2/5 cos(2πb/c).
  {
    const auto torus = Topology::torus(4, 6);
    const double l2 = 1.0 / 5 + 2.0 / 5 + 2.0 / 5 * std::cos(2 * std::numbers::pi / 6);
    const double ln = 1.0 / 5 - 2.0 / 5 - 2.0 / 5;
    REQUIRE(torus.spectral_gap() == Approx(1.0 - std::max(std::abs(l2), std::abs(ln))).epsilon(1e-12));
  }
  // The cache is shared by copies and gives the same answer twice.
  const auto ring = Topology::ring(20);
  const auto copy = ring;
  REQUIRE(copy.spectral_gap() == ring.spectral_gap());
}

TEST_CASE("Lanczos agrees with the exact eigensolver", "[topology][spectral]") {
  const std::vector<Topology> graphs{Topology::ring(300),           Topology::torus(15, 20),
                                     Topology::erdos_renyi(400, 0.03, 5), Topology::star(200),
                                     Topology::exponential(500),    Topology::hypercube(8),
                                     Topology::complete(50),        Topology::from_edges(3, std::vector<std::pair<int, int>>{{0, 1}, {1, 2}}),
                                     Topology::ring(2),             barbell(20),
                                     path(150)};
  for (const auto& t : graphs) {
    INFO(t.name());
    const auto exact = spectral::exact_extremes(t.matrix());
    const auto iter = spectral::lanczos_extremes(t.size(), [&](const Eigen::VectorXd& x, Eigen::VectorXd& y) { t.apply(x, y); });
    REQUIRE(iter.converged);
    REQUIRE(iter.lambda2 == Approx(exact.lambda2).margin(1e-9));
    REQUIRE(iter.lambda_min == Approx(exact.lambda_min).margin(1e-9));
    REQUIRE(iter.gap() == Approx(exact.gap()).epsilon(1e-8).margin(1e-12));
  }
}

TEST_CASE("spectral gap of a large ring uses Lanczos and matches the closed form", "[topology][spectral]") {
  const int n = 6000;  // above kExactSpectrumMaxNodes
  STATIC_REQUIRE(spectral::kExactSpectrumMaxNodes < 6000);
  const auto ring = Topology::ring(n);
  const double gap = 1.0 - ring_eigenvalue(n, 1);  // ≈ 3.7e-7
  REQUIRE(ring.extremes().iterations > 0);  // the iterative path ran
  REQUIRE(ring.extremes().converged);
  REQUIRE(ring.spectral_gap() == Approx(gap).epsilon(1e-6));
  REQUIRE(ring.extremes().lambda_min == Approx(-1.0 / 3.0).epsilon(1e-9));
}

TEST_CASE("from_matrix validation names the offending entry, row or component", "[topology][validation]") {
  Eigen::MatrixXd W = Topology::ring(5).matrix();
  REQUIRE_NOTHROW(Topology::from_matrix(W));

  REQUIRE_THROWS_WITH(Topology::from_matrix(Eigen::MatrixXd::Identity(3, 4)), Contains("square") && Contains("3x4"));
  REQUIRE_THROWS_WITH(Topology::from_matrix(Eigen::MatrixXd(0, 0)), Contains("at least one row"));

  Eigen::MatrixXd bad = W;
  bad(2, 3) = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_THROWS_WITH(Topology::from_matrix(bad), Contains("W(2, 3)") && Contains("not finite"));

  bad = W;
  bad(1, 2) = bad(2, 1) = -0.1;
  REQUIRE_THROWS_AS(Topology::from_matrix(bad), ConfigError);
  REQUIRE_THROWS_WITH(Topology::from_matrix(bad), Contains("W(1, 2) = -0.1") && Contains("negative"));

  bad = W;
  bad(0, 1) += 1e-9;
  bad(0, 0) -= 1e-9;
  REQUIRE_THROWS_WITH(Topology::from_matrix(bad), Contains("not symmetric") && Contains("W(0, 1)"));
  bad = W;
  bad(0, 1) *= 1.0 + 1e-14;  // inside the relative symmetry tolerance
  bad(1, 0) = bad(0, 1);
  REQUIRE_NOTHROW(Topology::from_matrix(bad));

  bad = W;
  bad(3, 3) += 0.2;  // row 3 sums to 1.2 (1/3 + 1/3 + 1/3 + 0.2)
  REQUIRE_THROWS_WITH(Topology::from_matrix(bad), Contains("mixing matrix row 3 sums to 1.2") && Contains("not 1"));

  // Two components {0,1,2} and {3,4} … plus {5}: node 3 is the first outside node 0's.
  Eigen::MatrixXd two = Eigen::MatrixXd::Zero(6, 6);
  two.block(0, 0, 3, 3).setConstant(1.0 / 3.0);
  two.block(3, 3, 2, 2).setConstant(0.5);
  two(5, 5) = 1.0;
  REQUIRE_THROWS_WITH(Topology::from_matrix(two), Contains("node 3 is not connected to node 0") && Contains("3 components"));
  Eigen::MatrixXd perm = Eigen::MatrixXd::Zero(4, 4);  // {0, 2} and {1, 3}
  perm(0, 2) = perm(2, 0) = perm(1, 3) = perm(3, 1) = 1.0;
  REQUIRE_THROWS_WITH(Topology::from_matrix(perm), Contains("node 1 is not connected to node 0; the graph has 2 components"));

  // A weighted, non-uniform valid W is accepted exactly as given.
  Eigen::MatrixXd custom(3, 3);
  custom << 0.5, 0.25, 0.25, 0.25, 0.75, 0.0, 0.25, 0.0, 0.75;
  const auto t = Topology::from_matrix(custom);
  REQUIRE(t.matrix() == custom);
  REQUIRE(t.degree(0) == 2);
  REQUIRE(t.degree(1) == 1);
}

TEST_CASE("from_matrix refuses a periodic W (zero self weights on a bipartite graph: spectral gap 0)", "[topology][validation]") {
  Eigen::MatrixXd swap(2, 2);
  swap << 0.0, 1.0, 1.0, 0.0;
  Eigen::MatrixXd ring4 = Eigen::MatrixXd::Zero(4, 4);  // the 4-cycle with zero diagonal
  for (int i = 0; i < 4; ++i) ring4(i, (i + 1) % 4) = ring4((i + 1) % 4, i) = 0.5;
  for (const auto& W : {swap, ring4}) {
    CAPTURE(W);
    REQUIRE(spectral::exact_extremes(W).lambda_min == Approx(-1.0));  // really periodic
    REQUIRE_THROWS_AS(Topology::from_matrix(W), ConfigError);
    REQUIRE_THROWS_WITH(Topology::from_matrix(W), Contains("periodic") && Contains("spectral gap 0") &&
                                                      Contains("bipartite") && Contains("node 0 and node 1"));
  }

  // An odd cycle with zero diagonal is aperiodic (λ_min = −1/2), and so is the 4-cycle made lazy.
  Eigen::MatrixXd ring3 = Eigen::MatrixXd::Constant(3, 3, 0.5);
  ring3.diagonal().setZero();
  REQUIRE_NOTHROW(Topology::from_matrix(ring3));
  REQUIRE(Topology::from_matrix(ring3).spectral_gap() == Approx(0.5));
  const Eigen::MatrixXd lazy = 0.5 * (Eigen::MatrixXd::Identity(4, 4) + ring4);
  REQUIRE(Topology::from_matrix(lazy).spectral_gap() > 0.0);
  // A bipartite path (0 and 2 against 1) with some positive self weights is aperiodic too.
  Eigen::MatrixXd path(3, 3);
  path << 0.5, 0.5, 0.0, 0.5, 0.0, 0.5, 0.0, 0.5, 0.5;
  REQUIRE(Topology::from_matrix(path).spectral_gap() > 0.0);
}

TEST_CASE("generator and edge-list validation names the parameter", "[topology][validation]") {
  REQUIRE_THROWS_WITH(Topology::ring(0), Contains("ring") && Contains("n must be"));
  REQUIRE_THROWS_WITH(Topology::complete(-3), Contains("complete") && Contains("n must be") && Contains("-3"));
  REQUIRE_THROWS_WITH(Topology::star(0), Contains("star") && Contains("n must be"));
  REQUIRE_THROWS_WITH(Topology::exponential(0), Contains("exponential") && Contains("n must be"));
  REQUIRE_THROWS_WITH(Topology::torus(0, 3), Contains("torus") && Contains("rows"));
  REQUIRE_THROWS_WITH(Topology::torus(3, 0), Contains("torus") && Contains("cols"));
  REQUIRE_THROWS_WITH(Topology::hypercube(-1), Contains("hypercube") && Contains("dim"));
  REQUIRE_THROWS_WITH(Topology::hypercube(31), Contains("dim"));
  REQUIRE_THROWS_WITH(Topology::erdos_renyi(10, 0.0, 1), Contains("erdos_renyi") && Contains("p must be in (0, 1]"));
  REQUIRE_THROWS_WITH(Topology::erdos_renyi(10, 1.5, 1), Contains("p must be"));
  REQUIRE_THROWS_WITH(Topology::erdos_renyi(10, std::nan(""), 1), Contains("p must be"));
  REQUIRE_THROWS_WITH(Topology::erdos_renyi(0, 0.5, 1), Contains("n must be"));
  REQUIRE_THROWS_WITH(Topology::erdos_renyi(200, 1e-4, 1), Contains("no connected graph in 64 draws") && Contains("too small"));

  using Edges = std::vector<std::pair<int, int>>;
  REQUIRE_THROWS_WITH(Topology::from_edges(0, Edges{}), Contains("n must be >= 1"));
  REQUIRE_THROWS_WITH(Topology::from_edges(3, Edges{{0, 1}, {1, 3}}), Contains("edge 1 (1, 3)") && Contains("outside [0, 3)"));
  REQUIRE_THROWS_WITH(Topology::from_edges(3, Edges{{0, 1}, {2, 2}}), Contains("edge 1 (2, 2) is a self loop"));
  REQUIRE_THROWS_WITH(Topology::from_edges(4, Edges{{0, 1}, {2, 3}}),
                      Contains("node 2 is not connected to node 0; the graph has 2 components"));
  REQUIRE_THROWS_WITH(Topology::from_edges(3, Edges{{0, 1}}), Contains("node 2 is not connected"));
  REQUIRE_THROWS_WITH(Topology::from_edges(3, {{0, 1}}), Contains("node 2 is not connected"));  // braced list
  REQUIRE(Topology::from_edges(3, {{0, 1}, {2, 1}}).matrix() == path(3).matrix());

  const auto ring = Topology::ring(4);
  REQUIRE_THROWS_WITH(ring.neighbors(4), Contains("node index 4 is out of range [0, 4)"));
  REQUIRE_THROWS_AS(ring.weight(0, -1), ConfigError);
}

TEST_CASE("erdos_renyi is reproducible, seed-dependent and connected", "[topology]") {
  const auto a = Topology::erdos_renyi(60, 0.08, 42);
  const auto b = Topology::erdos_renyi(60, 0.08, 42);
  const auto c = Topology::erdos_renyi(60, 0.08, 43);
  REQUIRE(a == b);
  REQUIRE(a.fingerprint() == b.fingerprint());
  REQUIRE_FALSE(a == c);
  REQUIRE(a.fingerprint() != c.fingerprint());
  check_mixing_matrix(a);
  check_mixing_matrix(c);
  // The edge density is about p: 60·59/2·0.08 ≈ 142 expected edges.
  const auto big = Topology::erdos_renyi(400, 0.05, 7);
  const double density = static_cast<double>(big.edge_count()) / (400.0 * 399.0 / 2.0);
  REQUIRE(density == Approx(0.05).margin(0.005));
  REQUIRE(Topology::erdos_renyi(8, 1.0, 9).matrix() == Topology::complete(8).matrix());
  REQUIRE(Topology::erdos_renyi(1, 0.3, 9).size() == 1);
  // Just above the threshold it still finds a connected draw (possibly after resampling).
  check_mixing_matrix(Topology::erdos_renyi(100, 0.05, 3));
}

TEST_CASE("fingerprint depends on n, edges and the exact weight bits", "[topology]") {
  const auto ring = Topology::ring(6);
  REQUIRE(ring.fingerprint() == Topology::ring(6).fingerprint());
  REQUIRE(ring.fingerprint() != Topology::ring(7).fingerprint());
  // The name is not hashed: ring(6) has the same W under both rules (1/3 everywhere).
  REQUIRE(ring.fingerprint() == Topology::ring(6, WeightRule::MaxDegree).fingerprint());
  const std::vector<std::pair<int, int>> path{{0, 1}, {1, 2}, {1, 3}, {3, 4}};  // MH 1/3 vs 1/4 on 3–4
  REQUIRE(Topology::from_edges(5, path).fingerprint() !=
          Topology::from_edges(5, path, WeightRule::MaxDegree).fingerprint());
  Eigen::MatrixXd W = ring.matrix();
  REQUIRE(Topology::from_matrix(W).fingerprint() == ring.fingerprint());
  W(0, 1) = W(1, 0) = std::nextafter(W(0, 1), 1.0);  // one ulp on one edge
  W(0, 0) = std::nextafter(W(0, 0), 0.0);
  W(1, 1) = std::nextafter(W(1, 1), 0.0);
  REQUIRE(Topology::from_matrix(W).fingerprint() != ring.fingerprint());
  REQUIRE(Topology::star(5).fingerprint() != Topology::ring(5).fingerprint());
}

TEST_CASE("one-peer exponential sequence", "[topology][time-varying]") {
  for (int n : {1, 2, 4, 8, 32}) {
    INFO("n = " << n);
    const OnePeerExponential seq(n);
    const int tau = n == 1 ? 1 : std::countr_zero(static_cast<unsigned>(n));
    REQUIRE(seq.period() == tau);
    REQUIRE(seq.size() == n);
    Eigen::MatrixXd product = Eigen::MatrixXd::Identity(n, n);
    for (long t = 0; t < tau; ++t) {
      const Topology& Wt = seq.at(t);
      const Eigen::MatrixXd W = Wt.matrix();
      REQUIRE((W - W.transpose()).cwiseAbs().maxCoeff() == 0.0);
      for (int i = 0; i < n; ++i) {
        REQUIRE(W.row(i).sum() == 1.0);
        if (n > 1) {
          REQUIRE(Wt.degree(i) == 1);
          REQUIRE(Wt.neighbors(i)[0].node == (i ^ (1 << t)));
          REQUIRE(Wt.neighbors(i)[0].weight == 0.5);
          REQUIRE(Wt.self_weight(i) == 0.5);
        }
      }
      product = W * product;
    }
    // Exactly 11ᵀ/n after one period, bit for bit.
    REQUIRE((product.array() == 1.0 / n).all());
    // Periodic.
    REQUIRE(seq.at(tau) == seq.at(0));
    REQUIRE(seq.at(3L * tau + (tau - 1)) == seq.at(tau - 1));
  }
  // For n ≥ 4 each round alone is disconnected: gap 0.
  REQUIRE(OnePeerExponential(8).at(1).spectral_gap() == Approx(0.0).margin(1e-12));
  REQUIRE_THROWS_WITH(OnePeerExponential(6), Contains("power of two") && Contains("6"));
  REQUIRE_THROWS_WITH(OnePeerExponential(0), Contains("power of two"));
  REQUIRE_THROWS_WITH(OnePeerExponential(4).at(-1), Contains("round must be >= 0"));
}
