// decopt/topology/topology.hpp — class Topology: a validated gossip graph with its mixing matrix.
//
// A Topology is an immutable, cheaply copyable value: n nodes, each with its neighbours (sorted,
// self excluded) and mixing weights, plus its self weight. Every way of making one — the named
// generators, from_edges, from_matrix — ends in the same validation: W is square, finite,
// non-negative, symmetric, has rows summing to 1, and its graph is connected. W is then doubly
// stochastic and, with positive self weights, primitive, so gossip x ← Wx converges to the mean.
//
// This header includes the generators, weight rules and spectral routines it needs; the aggregate
// "decopt/topology/topology_all.hpp" adds the time-varying sequences (time_varying.hpp).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "decopt/core/eigen.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"
#include "decopt/topology/edge.hpp"
#include "decopt/topology/generators.hpp"
#include "decopt/topology/spectral.hpp"
#include "decopt/topology/weights.hpp"

DECOPT_AVX512_QUIET_BEGIN
namespace decopt {

class OnePeerExponential;
class TopologySchedule;

/// A connected gossip graph with a symmetric doubly stochastic mixing matrix W.
///
/// Named graphs: ring, torus, complete, star, hypercube, exponential, erdos_renyi, each with a
/// WeightRule (default Metropolis–Hastings). Custom graphs: from_edges (weights by rule) or
/// from_matrix (weights given). All throw ConfigError naming the bad parameter, row or component.
class Topology {
 public:
  /// Relative tolerance of the symmetry check: |W_ij − W_ji| ≤ 1e-12·max(|W_ij|, |W_ji|).
  static constexpr double kSymmetryTolerance = 1e-12;
  /// Row-sum tolerance of from_matrix: |Σ_j W_ij − 1| ≤ 1e-12·max(1, n) (n rounding errors).
  static constexpr double kRowSumTolerance = 1e-12;

  // ---- named graphs ----
  /// Cycle on n ≥ 1 nodes (ring(1): one node, W = [1]; ring(2): one edge). MH weights: 1/3 each.
  static Topology ring(int n, WeightRule rule = WeightRule::MetropolisHastings) {
    return from_graph(n, graphs::ring_edges(n), rule, "ring(" + std::to_string(n));
  }
  /// rows × cols torus, node (r, c) = r·cols + c; 4-regular when rows, cols ≥ 3.
  static Topology torus(int rows, int cols, WeightRule rule = WeightRule::MetropolisHastings) {
    auto edges = graphs::torus_edges(rows, cols);
    return from_graph(rows * cols, edges, rule,
                      "torus(" + std::to_string(rows) + "x" + std::to_string(cols));
  }
  /// Complete graph; with Metropolis–Hastings weights W = 11ᵀ/n exactly (every entry is 1.0/n).
  static Topology complete(int n, WeightRule rule = WeightRule::MetropolisHastings) {
    return from_graph(n, graphs::complete_edges(n), rule, "complete(" + std::to_string(n));
  }
  /// Star: node 0 is the hub.
  static Topology star(int n, WeightRule rule = WeightRule::MetropolisHastings) {
    return from_graph(n, graphs::star_edges(n), rule, "star(" + std::to_string(n));
  }
  /// Hypercube on 2^dim nodes, i ~ i XOR 2^k; dim = 0 is one node.
  static Topology hypercube(int dim, WeightRule rule = WeightRule::MetropolisHastings) {
    auto edges = graphs::hypercube_edges(dim);
    return from_graph(1 << dim, edges, rule, "hypercube(" + std::to_string(dim));
  }
  /// Static undirected exponential graph: i ~ (i ± 2^k) mod n for 2^k < n (Ying et al. 2021).
  static Topology exponential(int n, WeightRule rule = WeightRule::MetropolisHastings) {
    return from_graph(n, graphs::exponential_edges(n), rule, "exponential(" + std::to_string(n));
  }
  /// Connected G(n, p) drawn reproducibly from `seed` (see graphs::erdos_renyi_edges).
  static Topology erdos_renyi(int n, double p, std::uint64_t seed,
                              WeightRule rule = WeightRule::MetropolisHastings) {
    return from_graph(n, graphs::erdos_renyi_edges(n, p, seed), rule,
                      "erdos_renyi(" + std::to_string(n) + ", " + detail::format_double(p) + ", seed " +
                          std::to_string(seed));
  }

  // ---- custom graphs ----
  /// n nodes and an undirected edge list (either orientation, duplicates merged; self loops and
  /// out-of-range endpoints are ConfigErrors); weights by `rule`; must be connected.
  static Topology from_edges(int n, std::span<const std::pair<int, int>> edges,
                             WeightRule rule = WeightRule::MetropolisHastings) {
    return from_graph(n, edges, rule, "graph(" + std::to_string(n) + " nodes");
  }
  /// from_edges with a braced list: Topology::from_edges(3, {{0, 1}, {1, 2}}).
  static Topology from_edges(int n, std::initializer_list<std::pair<int, int>> edges,
                             WeightRule rule = WeightRule::MetropolisHastings) {
    return from_edges(n, std::span<const std::pair<int, int>>(edges.begin(), edges.size()), rule);
  }

  /// A given mixing matrix, validated in this order: at least 1×1 and square; finite;
  /// non-negative; symmetric (kSymmetryTolerance); every row sums to 1 (kRowSumTolerance);
  /// connected (W_ij > 0 is an edge); aperiodic, i.e. spectral gap > 0 (see require_aperiodic).
  /// The ConfigError names the first offending entry, row, the first node outside node 0's
  /// component or the periodicity, e.g. "mixing matrix row 3 sums to 1.2, not 1".
  static Topology from_matrix(const Eigen::MatrixXd& W) {
    Topology topology = from_matrix_checked(W, true);
    topology.require_aperiodic();
    return topology;
  }

  // ---- queries ----
  /// Number of nodes n.
  [[nodiscard]] int size() const noexcept { return n_; }
  /// Node i's neighbours with their weights w_ij > 0, sorted by node, i itself excluded.
  [[nodiscard]] std::span<const Edge> neighbors(int i) const {
    check_node(i);
    const auto u = static_cast<std::size_t>(i);
    return {edges_.data() + offsets_[u], offsets_[u + 1] - offsets_[u]};
  }
  /// w_ii.
  [[nodiscard]] double self_weight(int i) const {
    check_node(i);
    return self_weights_[static_cast<std::size_t>(i)];
  }
  /// Number of neighbours of i (self excluded).
  [[nodiscard]] int degree(int i) const { return static_cast<int>(neighbors(i).size()); }
  /// Largest degree.
  [[nodiscard]] int max_degree() const noexcept { return max_degree_; }
  /// Number of undirected edges.
  [[nodiscard]] std::size_t edge_count() const noexcept { return edges_.size() / 2; }
  /// W_ij (w_ii on the diagonal, 0 between non-neighbours); O(log degree).
  [[nodiscard]] double weight(int i, int j) const {
    if (i == j) return self_weight(i);
    check_node(j);
    const auto row = neighbors(i);
    const auto it = std::lower_bound(row.begin(), row.end(), j, [](const Edge& e, int v) { return e.node < v; });
    return it != row.end() && it->node == j ? it->weight : 0.0;
  }
  /// The dense n×n mixing matrix W.
  [[nodiscard]] Eigen::MatrixXd matrix() const {
    Eigen::MatrixXd W = Eigen::MatrixXd::Zero(n_, n_);
    for (int i = 0; i < n_; ++i) {
      W(i, i) = self_weights_[static_cast<std::size_t>(i)];
      for (const Edge& e : neighbors(i)) W(i, e.node) = e.weight;
    }
    return W;
  }
  /// y = W x on the sparse rows, O(n + edges). x and y must have n entries and not alias.
  void apply(const Eigen::VectorXd& x, Eigen::VectorXd& y) const {
    y.resize(n_);
    for (int i = 0; i < n_; ++i) {
      double acc = self_weights_[static_cast<std::size_t>(i)] * x(i);
      for (const Edge& e : neighbors(i)) acc += e.weight * x(e.node);
      y(i) = acc;
    }
  }
  /// A readable name: "ring(8)", "torus(4x4)", "hypercube(3, max-degree)", "matrix(5)", …
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// A 64-bit hash of n, every neighbour list and the exact bits of every weight (self weights
  /// included; the name is not). MPI ranks compare it to check that they built the same W.
  [[nodiscard]] std::uint64_t fingerprint() const noexcept { return fingerprint_; }

  /// max(|λ2|, |λn|) of W, the second largest eigenvalue modulus (0 for n = 1). Exact (dense
  /// symmetric eigensolver) for n ≤ spectral::kExactSpectrumMaxNodes, Lanczos on the sparse W
  /// beyond (see spectral::lanczos_extremes for its accuracy). Computed once, then cached; safe to
  /// call from several threads. The three spectral members are templates only so that the dense
  /// eigensolver is compiled where they are called (spectral::exact_extremes); call them as usual.
  template <class Matrix = Eigen::MatrixXd>
  [[nodiscard]] double second_largest_eigenvalue_modulus() const { return extremes<Matrix>().slem(); }

  /// The spectral gap δ = 1 − max(|λ2|, |λn|) ∈ [0, 1] of W: the per-round contraction of gossip
  /// averaging, ‖Wx − x̄1‖ ≤ (1 − δ)‖x − x̄1‖, and the δ of CHOCO-SGD (Koloskova et al., ICML
  /// 2019), whose consensus step γ and rate depend on it. 1 for complete graphs, Θ(1/n²) for rings.
  template <class Matrix = Eigen::MatrixXd>
  [[nodiscard]] double spectral_gap() const { return extremes<Matrix>().gap(); }

  /// λ2 and λn of W (cached, see second_largest_eigenvalue_modulus).
  template <class Matrix = Eigen::MatrixXd>
  [[nodiscard]] const spectral::ExtremeEigenvalues& extremes() const {
    std::call_once(cache_->once, [&] {
      if (n_ <= spectral::kExactSpectrumMaxNodes) {
        cache_->value = spectral::exact_extremes(Matrix(matrix()));
      } else {
        cache_->value = spectral::lanczos_extremes(
            n_, [this](const Eigen::VectorXd& x, Eigen::VectorXd& y) { apply(x, y); });
      }
    });
    return cache_->value;
  }

  /**
   * The graph left when the nodes in `lost` are gone (a peer lost mid-run), with
   * Metropolis–Hastings weights w_ij = 1/(1 + max(d_i, d_j)), w_ii = 1 − Σ_j w_ij on the remaining
   * edges. Indices are kept: a lost node stays, isolated, with self weight 1. W stays symmetric and
   * doubly stochastic; on a Metropolis–Hastings topology only the rows of the lost nodes' neighbours
   * and of their neighbours change (an edge's weight depends on its two ends' degrees only).
   * @param lost node indices (duplicates allowed), each in [0, n)
   * @throws ConfigError for a node out of range; Error naming the graph, the lost nodes and a
   *         cut-off survivor when the surviving nodes are not connected (or none survives)
   */
  [[nodiscard]] Topology without(std::span<const int> lost) const {
    std::vector<char> gone(static_cast<std::size_t>(n_), 0);
    std::string list;
    for (int v : lost) {
      check_node(v);
      if (!gone[static_cast<std::size_t>(v)]) list += (list.empty() ? "" : ", ") + std::to_string(v);
      gone[static_cast<std::size_t>(v)] = 1;
    }
    std::vector<std::pair<int, int>> edges;
    for (int i = 0; i < n_; ++i)
      for (const Edge& e : neighbors(i))
        if (i < e.node && !gone[static_cast<std::size_t>(i)] && !gone[static_cast<std::size_t>(e.node)])
          edges.emplace_back(i, e.node);
    const std::string name = name_ + " without {" + list + "}";
    Topology rest(apply_weight_rule(detail::make_adjacency(n_, edges), WeightRule::MetropolisHastings), name, false);
    const std::vector<int> label = detail::component_labels(n_, [&rest](int v) { return rest.neighbor_nodes(v); });
    const auto first = std::find(gone.begin(), gone.end(), 0);
    if (first == gone.end()) throw Error("decopt: " + name + " has no node left");
    const auto root = static_cast<std::size_t>(first - gone.begin());
    for (std::size_t v = 0; v < gone.size(); ++v)
      if (!gone[v] && label[v] != label[root])
        throw Error("decopt: the surviving graph " + name + " is disconnected: node " + std::to_string(v) +
                    " is not connected to node " + std::to_string(root) + "; the run cannot continue without it");
    return rest;
  }

  friend bool operator==(const Topology& a, const Topology& b) noexcept {
    return a.n_ == b.n_ && a.offsets_ == b.offsets_ && a.edges_ == b.edges_ && a.self_weights_ == b.self_weights_;
  }

 private:
  friend class OnePeerExponential;
  friend class TopologySchedule;

  struct SpectralCache {
    std::once_flag once;
    spectral::ExtremeEigenvalues value;
  };

  /// from_matrix's entrywise, symmetry and row-sum checks; connectivity only when asked (a round
  /// of a TopologySchedule may be disconnected), aperiodicity left to the caller.
  static Topology from_matrix_checked(const Eigen::MatrixXd& W, bool require_connected) {
    detail::require(W.rows() >= 1 && W.rows() == W.cols(),
                    "mixing matrix must be square with at least one row (got " + std::to_string(W.rows()) +
                        "x" + std::to_string(W.cols()) + ")");
    const int n = static_cast<int>(W.rows());
    auto entry = [&](Eigen::Index i, Eigen::Index j) {
      return "mixing matrix entry W(" + std::to_string(i) + ", " + std::to_string(j) + ") = " +
             detail::format_double(W(i, j));
    };
    for (Eigen::Index i = 0; i < n; ++i)
      for (Eigen::Index j = 0; j < n; ++j) {
        detail::require(std::isfinite(W(i, j)), entry(i, j) + " is not finite");
        detail::require(W(i, j) >= 0.0, entry(i, j) + " is negative");
      }
    for (Eigen::Index i = 0; i < n; ++i)
      for (Eigen::Index j = i + 1; j < n; ++j) {
        const double a = W(i, j), b = W(j, i);
        detail::require(std::abs(a - b) <= kSymmetryTolerance * std::max(a, b),
                        "mixing matrix is not symmetric: " + entry(i, j) + " but W(" + std::to_string(j) +
                            ", " + std::to_string(i) + ") = " + detail::format_double(b));
      }
    SparseMixing m;
    m.offsets.reserve(static_cast<std::size_t>(n) + 1);
    m.self_weights.resize(static_cast<std::size_t>(n));
    for (Eigen::Index i = 0; i < n; ++i) {
      m.offsets.push_back(m.edges.size());
      m.self_weights[static_cast<std::size_t>(i)] = W(i, i);
      for (Eigen::Index j = 0; j < n; ++j)
        if (j != i && W(i, j) > 0.0) m.edges.push_back({static_cast<int>(j), W(i, j)});
    }
    m.offsets.push_back(m.edges.size());
    return Topology(std::move(m), "matrix(" + std::to_string(n) + ")", require_connected);
  }

  static Topology from_graph(int n, std::span<const std::pair<int, int>> edges, WeightRule rule,
                             std::string name_prefix, bool require_connected = true) {
    const detail::Adjacency adj = detail::make_adjacency(n, edges);
    if (rule == WeightRule::MaxDegree) name_prefix += ", max-degree";
    return Topology(apply_weight_rule(adj, rule), name_prefix + ")", require_connected);
  }

  Topology(SparseMixing m, std::string name, bool require_connected)
      : n_(static_cast<int>(m.self_weights.size())),
        offsets_(std::move(m.offsets)),
        edges_(std::move(m.edges)),
        self_weights_(std::move(m.self_weights)),
        name_(std::move(name)),
        cache_(std::make_shared<SpectralCache>()) {
    validate(require_connected);
    max_degree_ = 0;
    for (int i = 0; i < n_; ++i) max_degree_ = std::max(max_degree_, degree(i));
    fingerprint_ = compute_fingerprint();
  }

  void check_node(int i) const {
    if (i < 0 || i >= n_)
      throw ConfigError("node index " + std::to_string(i) + " is out of range [0, " + std::to_string(n_) + ")");
  }

  /// Row sums and connectivity on the sparse rows (the entrywise checks are the weight rules' or
  /// from_matrix's). Rows are summed in sorted order so the check does not depend on node order.
  void validate(bool require_connected) const {
    std::vector<double> row;
    for (int i = 0; i < n_; ++i) {
      row.clear();
      row.push_back(self_weights_[static_cast<std::size_t>(i)]);
      for (const Edge& e : neighbors(i)) row.push_back(e.weight);
      std::sort(row.begin(), row.end());
      double sum = 0.0;
      for (double v : row) sum += v;
      detail::require(std::abs(sum - 1.0) <= kRowSumTolerance * std::max(1, n_),
                      "mixing matrix row " + std::to_string(i) + " sums to " + detail::format_double(sum) +
                          ", not 1");
    }
    if (require_connected) detail::require_connected(n_, [this](int v) { return neighbor_nodes(v); });
  }

  /// The neighbour indices of v, as a range of int for the graph helpers of edge.hpp.
  struct NodeRange {
    std::span<const Edge> row;
    struct It {
      const Edge* p;
      int operator*() const { return p->node; }
      It& operator++() {
        ++p;
        return *this;
      }
      bool operator!=(const It& o) const { return p != o.p; }
    };
    [[nodiscard]] It begin() const { return {row.data()}; }
    [[nodiscard]] It end() const { return {row.data() + row.size()}; }
  };
  [[nodiscard]] NodeRange neighbor_nodes(int v) const { return NodeRange{neighbors(v)}; }

  /// Throws ConfigError when W is periodic: every self weight is 0 and the graph is bipartite, so
  /// x ← Wx swaps the two sides' values every round instead of averaging them (the 2-node swap
  /// [[0, 1], [1, 0]], a zero-diagonal even ring). Such a W has eigenvalue −1, spectral gap 0.
  /// On a connected graph this is the only way to lose the gap: λ2 < 1 by connectivity, and for a
  /// non-negative symmetric stochastic W, Wv = −v forces |v| constant, v alternating along every
  /// edge and W_ii = 0 wherever v_i ≠ 0 — so the exact graph test replaces an O(n³) eigensolver.
  /// The generators' weight rules never fail it (their self weights are > 0); from_matrix calls it.
  void require_aperiodic() const {
    if (std::any_of(self_weights_.begin(), self_weights_.end(), [](double w) { return w > 0.0; })) return;
    const std::vector<int> side = detail::bipartition(n_, [this](int v) { return neighbor_nodes(v); });
    if (side.empty()) return;  // an odd cycle: aperiodic
    const auto other_side = std::count(side.begin(), side.end(), 1);
    const int across = neighbors(0).front().node;  // connected and n >= 2 here (W = [0] has row sum 0)
    throw ConfigError("mixing matrix is periodic (spectral gap 0): every self weight W(i, i) is 0 and its graph is "
                      "bipartite (" + std::to_string(n_ - other_side) + " and " + std::to_string(other_side) +
                      " nodes; node 0 and node " + std::to_string(across) +
                      " are on opposite sides), so W has eigenvalue -1 and gossip x <- Wx swaps the two sides "
                      "instead of averaging; W must have spectral gap > 0 (|lambda2| < 1 and lambda_min > -1): "
                      "give the nodes positive self weights, e.g. use (I + W)/2");
  }

  std::uint64_t compute_fingerprint() const noexcept {
    std::uint64_t h = decopt::detail::mix64(0x746f706f6c6f6779ULL ^ static_cast<std::uint64_t>(n_));
    auto feed = [&h](std::uint64_t v) { h = decopt::detail::fold_hash(h, v); };
    for (int i = 0; i < n_; ++i) {
      feed(static_cast<std::uint64_t>(i));
      feed(std::bit_cast<std::uint64_t>(self_weights_[static_cast<std::size_t>(i)]));
      for (const Edge& e : neighbors(i)) {
        feed(static_cast<std::uint64_t>(e.node));
        feed(std::bit_cast<std::uint64_t>(e.weight));
      }
      feed(~std::uint64_t{0});  // row separator
    }
    return h;
  }

  int n_ = 0;
  std::vector<std::size_t> offsets_;
  std::vector<Edge> edges_;
  std::vector<double> self_weights_;
  int max_degree_ = 0;
  std::string name_;
  std::uint64_t fingerprint_ = 0;
  std::shared_ptr<SpectralCache> cache_;  // shared by copies: W is immutable
};

}  // namespace decopt
DECOPT_AVX512_QUIET_END
