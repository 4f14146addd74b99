// decopt/topology/directed.hpp — directed communication graphs for push-sum gossip.
//
// A DirectedGraph lists, per node i, the nodes it sends to (out-neighbours) and receives from
// (in-neighbours). Push-sum (Kempe, Dobra & Gehrke, FOCS 2003; Nedić & Olshevsky, "Stochastic
// Gradient-Push for Strongly Convex Functions on Time-Varying Directed Graphs", IEEE TAC 2016)
// mixes with the column-stochastic matrix
//     A_ji = 1 / (d_i + 1)  for j ∈ out(i) ∪ {i},   0 otherwise     (d_i = |out(i)|),
// i.e. every node splits what it holds equally between itself and its out-neighbours. Columns
// sum to 1, rows in general do not, so mass is conserved but plain gossip would converge to a
// weighted average; push-sum's weights w = A w (w₀ = 1) undo the bias (optimizer/push_sum.hpp).
//
// Named graphs: the directed ring i → i+1 and the directed exponential graph i → i + 2^k
// (mod n, 2^k < n) of Stochastic Gradient Push (Assran, Loizou, Ballas & Rabbat, ICML 2019).
// Both are regular (every node has the same in- and out-degree), so their A is also row-
// stochastic and the weights stay 1; an irregular graph (from_edges) is where push-sum's weights
// matter. A graph must be strongly connected (every node reaches every other along its edges):
// otherwise some node never hears of another and no average can be reached (ConfigError).
//
// Transports deliver along undirected neighbourhoods: build the transport over undirected(),
// the graph with every edge in both directions; push-sum then posts only to out-neighbours
// (post_to) and collects only from in-neighbours (collect_from).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Dense>

#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"
#include "decopt/topology/topology.hpp"

namespace decopt {

/// A strongly connected directed graph with push-sum's column-stochastic mixing weights.
class DirectedGraph {
 public:
  /// The directed ring 0 → 1 → … → n−1 → 0 (n ≥ 2). @throws ConfigError for n < 2
  static DirectedGraph ring(int n) {
    detail::require(n >= 2, "directed ring: needs at least 2 nodes, got " + std::to_string(n));
    std::vector<std::pair<int, int>> edges;
    for (int i = 0; i < n; ++i) edges.emplace_back(i, (i + 1) % n);
    return DirectedGraph(n, edges, "directed-ring(" + std::to_string(n) + ")");
  }

  /// SGP's directed exponential graph: i → (i + 2^k) mod n for every 2^k < n (n ≥ 2), so
  /// ⌊log2(n − 1)⌋ + 1 out-neighbours each. @throws ConfigError for n < 2
  static DirectedGraph exponential(int n) {
    detail::require(n >= 2, "directed exponential graph: needs at least 2 nodes, got " + std::to_string(n));
    std::vector<std::pair<int, int>> edges;
    for (int i = 0; i < n; ++i)
      for (long hop = 1; hop < n; hop *= 2) edges.emplace_back(i, static_cast<int>((i + hop) % n));
    return DirectedGraph(n, edges, "directed-exponential(" + std::to_string(n) + ")");
  }

  /// n nodes and directed edges (from, to); duplicates are merged.
  /// @throws ConfigError for n < 1, an endpoint out of range, a self loop, or a graph that is not
  ///         strongly connected (naming a node that node 0 cannot reach, or that cannot reach it)
  static DirectedGraph from_edges(int n, std::span<const std::pair<int, int>> edges) {
    return DirectedGraph(n, edges, "directed-graph(" + std::to_string(n) + " nodes)");
  }
  /// from_edges with a braced list: DirectedGraph::from_edges(3, {{0, 1}, {1, 2}, {2, 0}}).
  static DirectedGraph from_edges(int n, std::initializer_list<std::pair<int, int>> edges) {
    return from_edges(n, std::span<const std::pair<int, int>>(edges.begin(), edges.size()));
  }

  [[nodiscard]] int size() const noexcept { return static_cast<int>(out_.size()); }
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// The nodes i sends to, ascending.
  [[nodiscard]] std::span<const int> out_neighbors(int i) const { return out_.at(static_cast<std::size_t>(i)); }
  /// The nodes i receives from, ascending.
  [[nodiscard]] std::span<const int> in_neighbors(int i) const { return in_.at(static_cast<std::size_t>(i)); }
  [[nodiscard]] int out_degree(int i) const { return static_cast<int>(out_neighbors(i).size()); }
  /// The share 1/(d_i + 1) that node i keeps and sends to each out-neighbour (A's column i).
  [[nodiscard]] double share(int i) const { return 1.0 / (out_degree(i) + 1.0); }
  /// Whether every node has the same number of in- and out-neighbours as every other (then A is
  /// doubly stochastic and push-sum's weights stay 1).
  [[nodiscard]] bool regular() const {
    for (int i = 0; i < size(); ++i)
      if (out_degree(i) != out_degree(0) || in_neighbors(i).size() != out_neighbors(0).size()) return false;
    return true;
  }

  /// A hash of the node count and every out-neighbour list: checkpoints record it, so a state
  /// saved on one graph is not loaded on another.
  [[nodiscard]] std::uint64_t fingerprint() const noexcept {
    std::uint64_t h = decopt::detail::mix64(0x6469726563746564ULL /* "directed" */ ^ static_cast<std::uint64_t>(size()));
    auto feed = [&h](std::uint64_t v) { h = decopt::detail::fold_hash(h, v); };
    for (const auto& list : out_) {
      for (const int j : list) feed(static_cast<std::uint64_t>(j));
      feed(~std::uint64_t{0});  // list separator
    }
    return h;
  }

  /// The column-stochastic mixing matrix A (A_ji = share(i) for j ∈ out(i) ∪ {i}).
  [[nodiscard]] Eigen::MatrixXd mixing_matrix() const {
    const int n = size();
    Eigen::MatrixXd a = Eigen::MatrixXd::Zero(n, n);
    for (int i = 0; i < n; ++i) {
      a(i, i) = share(i);
      for (const int j : out_neighbors(i)) a(j, i) = share(i);
    }
    return a;
  }

  /// The same nodes with every edge in both directions: the graph to build a transport over.
  [[nodiscard]] Topology undirected() const {
    std::vector<std::pair<int, int>> edges;
    for (int i = 0; i < size(); ++i)
      for (const int j : out_neighbors(i)) edges.emplace_back(i, j);
    return Topology::from_edges(size(), edges);
  }

 private:
  DirectedGraph(int n, std::span<const std::pair<int, int>> edges, std::string name) : name_(std::move(name)) {
    detail::require(n >= 1, "directed graph: needs at least 1 node, got " + std::to_string(n));
    out_.resize(static_cast<std::size_t>(n));
    in_.resize(static_cast<std::size_t>(n));
    for (const auto& [from, to] : edges) {
      detail::require(from >= 0 && from < n && to >= 0 && to < n,
                      "directed graph: edge (" + std::to_string(from) + " -> " + std::to_string(to) +
                          ") has an endpoint outside [0, " + std::to_string(n) + ")");
      detail::require(from != to, "directed graph: self loop at node " + std::to_string(from) +
                                      " (every node keeps its own share already)");
      out_[static_cast<std::size_t>(from)].push_back(to);
      in_[static_cast<std::size_t>(to)].push_back(from);
    }
    for (auto* lists : {&out_, &in_})
      for (auto& list : *lists) {
        std::sort(list.begin(), list.end());
        list.erase(std::unique(list.begin(), list.end()), list.end());
      }
    require_reaches_all(out_, "node 0 cannot reach node ");
    require_reaches_all(in_, "node 0 cannot be reached from node ");
  }

  /// Breadth-first from node 0 along `adjacency`; ConfigError naming the first node not reached.
  void require_reaches_all(const std::vector<std::vector<int>>& adjacency, const std::string& what) const {
    std::vector<char> seen(adjacency.size(), 0);
    std::vector<int> frontier{0};
    seen[0] = 1;
    while (!frontier.empty()) {
      const int i = frontier.back();
      frontier.pop_back();
      for (const int j : adjacency[static_cast<std::size_t>(i)])
        if (!seen[static_cast<std::size_t>(j)]) {
          seen[static_cast<std::size_t>(j)] = 1;
          frontier.push_back(j);
        }
    }
    const auto missing = std::find(seen.begin(), seen.end(), 0);
    detail::require(missing == seen.end(), "directed graph " + name_ + " is not strongly connected: " + what +
                                               std::to_string(missing - seen.begin()));
  }

  std::vector<std::vector<int>> out_;
  std::vector<std::vector<int>> in_;
  std::string name_;
};

}  // namespace decopt
