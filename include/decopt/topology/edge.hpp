// decopt/topology/edge.hpp — the vocabulary types of a gossip topology: a weighted edge as one node
// sees it, the mixing-weight rules, and the small graph helpers (edge-list normalisation, connected
// components, bipartiteness) that the generators, the weight rules and the validation share.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "decopt/core/error.hpp"

namespace decopt {

/// One neighbour of a node in a gossip topology: the neighbour's index and the mixing weight
/// w_ij > 0 that node i gives to node j's value. The self weight w_ii is stored separately
/// (Topology::self_weight), so a span of Edges lists the neighbours only.
struct Edge {
  int node;
  double weight;
  friend bool operator==(const Edge&, const Edge&) = default;
};

/// How a generator turns an undirected graph into a symmetric doubly stochastic W.
///
/// Both rules give w_ij = w_ji > 0 on edges, w_ij = 0 off edges and w_ii = 1 − Σ_{j≠i} w_ij ≥
/// 1/(1 + max degree) > 0, so W is symmetric, doubly stochastic, non-negative and (the self loops
/// make it aperiodic) primitive on a connected graph.
enum class WeightRule {
  /// Metropolis–Hastings: w_ij = 1 / (1 + max(deg_i, deg_j)) (Xiao & Boyd, "Fast linear
  /// iterations for distributed averaging", 2004). Local: each node needs only its neighbours'
  /// degrees. On the complete graph it gives the exact average W = 11ᵀ/n.
  MetropolisHastings,
  /// Maximum degree: w_ij = 1 / (1 + Δ) with Δ the largest degree in the graph (the "max-degree
  /// weights" of Xiao & Boyd 2004). Needs the global Δ; uniform across edges.
  MaxDegree,
};

/// "metropolis-hastings" or "max-degree".
inline const char* to_string(WeightRule rule) noexcept {
  return rule == WeightRule::MaxDegree ? "max-degree" : "metropolis-hastings";
}

namespace detail {

/// An undirected simple graph as sorted adjacency lists (no self loops, no duplicate edges).
struct Adjacency {
  std::vector<std::vector<int>> neighbors;
  [[nodiscard]] int size() const noexcept { return static_cast<int>(neighbors.size()); }
  [[nodiscard]] int degree(int i) const noexcept {
    return static_cast<int>(neighbors[static_cast<std::size_t>(i)].size());
  }
};

/// Builds the adjacency of n nodes from an undirected edge list. Each pair may appear in either
/// orientation and more than once (duplicates merge). Throws ConfigError naming the first edge
/// with an endpoint outside [0, n) or that is a self loop.
inline Adjacency make_adjacency(int n, std::span<const std::pair<int, int>> edges) {
  require(n >= 1, "topology size n must be >= 1 (got " + std::to_string(n) + ")");
  Adjacency adj;
  adj.neighbors.resize(static_cast<std::size_t>(n));
  for (std::size_t e = 0; e < edges.size(); ++e) {
    const auto [a, b] = edges[e];
    require(a >= 0 && a < n && b >= 0 && b < n,
            "edge " + std::to_string(e) + " (" + std::to_string(a) + ", " + std::to_string(b) +
                ") has an endpoint outside [0, " + std::to_string(n) + ")");
    require(a != b, "edge " + std::to_string(e) + " (" + std::to_string(a) + ", " + std::to_string(b) +
                        ") is a self loop; self weights are implied by the weight rule");
    adj.neighbors[static_cast<std::size_t>(a)].push_back(b);
    adj.neighbors[static_cast<std::size_t>(b)].push_back(a);
  }
  for (auto& list : adj.neighbors) {
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
  }
  return adj;
}

/// Connected-component label of every node (labels 0, 1, … in order of each component's smallest
/// node, so node 0 is always in component 0), by an iterative depth-first search.
/// `neighbors_of(i)` must return an iterable range of neighbour indices.
template <class NeighborsOf>
std::vector<int> component_labels(int n, NeighborsOf&& neighbors_of) {
  std::vector<int> label(static_cast<std::size_t>(n), -1);
  std::vector<int> stack;
  int next_label = 0;
  for (int start = 0; start < n; ++start) {
    if (label[static_cast<std::size_t>(start)] >= 0) continue;
    label[static_cast<std::size_t>(start)] = next_label;
    stack.push_back(start);
    while (!stack.empty()) {
      const int v = stack.back();
      stack.pop_back();
      for (int u : neighbors_of(v)) {
        if (label[static_cast<std::size_t>(u)] < 0) {
          label[static_cast<std::size_t>(u)] = next_label;
          stack.push_back(u);
        }
      }
    }
    ++next_label;
  }
  return label;
}

/// A 2-colouring of the graph (side 0 or 1 per node, the smallest node of each component on side
/// 0) in which every edge joins the two sides, or an empty vector when the graph is not bipartite
/// (it has an odd cycle). Breadth-first, O(n + edges). `neighbors_of(i)` as for component_labels.
template <class NeighborsOf>
std::vector<int> bipartition(int n, NeighborsOf&& neighbors_of) {
  std::vector<int> side(static_cast<std::size_t>(n), -1);
  std::vector<int> queue;
  for (int start = 0; start < n; ++start) {
    if (side[static_cast<std::size_t>(start)] >= 0) continue;
    side[static_cast<std::size_t>(start)] = 0;
    queue.assign(1, start);
    for (std::size_t head = 0; head < queue.size(); ++head) {
      const int v = queue[head];
      const int other = 1 - side[static_cast<std::size_t>(v)];
      for (int u : neighbors_of(v)) {
        int& s = side[static_cast<std::size_t>(u)];
        if (s < 0) {
          s = other;
          queue.push_back(u);
        } else if (s != other) {
          return {};
        }
      }
    }
  }
  return side;
}

/// Throws ConfigError "node k is not connected to node 0; the graph has c components" (k the
/// smallest node outside node 0's component) unless the graph is connected.
template <class NeighborsOf>
void require_connected(int n, NeighborsOf&& neighbors_of) {
  const std::vector<int> label = component_labels(n, neighbors_of);
  const int components = n == 0 ? 0 : 1 + *std::max_element(label.begin(), label.end());
  if (components <= 1) return;
  const auto first_outside = std::find_if(label.begin(), label.end(), [](int l) { return l != 0; });
  throw ConfigError("node " + std::to_string(first_outside - label.begin()) +
                    " is not connected to node 0; the graph has " + std::to_string(components) +
                    " components");
}

}  // namespace detail
}  // namespace decopt
