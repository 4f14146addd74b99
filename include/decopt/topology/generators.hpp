// decopt/topology/generators.hpp — the named graphs, as undirected edge lists (each pair once,
// smaller node first, sorted). Topology's static constructors (topology.hpp) turn them into
// mixing matrices with a WeightRule; they are public so users can edit a named graph (drop a
// link, add a shortcut) and pass it to Topology::from_edges.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"
#include "decopt/topology/edge.hpp"

namespace decopt::graphs {

/// An undirected edge list: pairs (i, j) with i < j.
using EdgeList = std::vector<std::pair<int, int>>;

namespace detail {
inline void require_nodes(const char* generator, const char* parameter, long value, long max_value) {
  decopt::detail::require(value >= 1 && value <= max_value,
                          std::string(generator) + ": " + parameter + " must be in [1, " +
                              std::to_string(max_value) + "] (got " + std::to_string(value) + ")");
}
/// Sorts (i < j) pairs and removes duplicates, for generators whose wrap-around links coincide on
/// small sizes (ring(2), torus(2, ·), exponential(n) with 2^k ≡ −2^k mod n).
inline EdgeList normalise(EdgeList edges) {
  for (auto& [a, b] : edges)
    if (a > b) std::swap(a, b);
  std::erase_if(edges, [](const auto& e) { return e.first == e.second; });
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  return edges;
}
constexpr long kMaxNodes = 1L << 30;
}  // namespace detail

/// Cycle 0–1–…–(n−1)–0. ring(1) has no edge (W = [1]); ring(2) is the single edge 0–1 (not a
/// double edge), so every node has degree min(n − 1, 2).
inline EdgeList ring_edges(int n) {
  detail::require_nodes("ring", "n", n, detail::kMaxNodes);
  EdgeList edges;
  for (int i = 0; i + 1 < n; ++i) edges.emplace_back(i, i + 1);
  if (n >= 3) edges.emplace_back(0, n - 1);
  return detail::normalise(std::move(edges));
}

/// rows × cols torus (a 2-D grid with wrap-around); node (r, c) is r·cols + c. A side of length 1
/// adds no link along it, a side of length 2 one link (not two), so torus(1, n) = ring(n) and
/// torus(r, c) with r, c ≥ 3 is 4-regular.
inline EdgeList torus_edges(int rows, int cols) {
  detail::require_nodes("torus", "rows", rows, detail::kMaxNodes);
  detail::require_nodes("torus", "cols", cols, detail::kMaxNodes);
  decopt::detail::require(static_cast<long>(rows) * cols <= detail::kMaxNodes,
                          "torus: rows * cols must be <= 2^30");
  EdgeList edges;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const int v = r * cols + c;
      if (cols > 1) edges.emplace_back(v, r * cols + (c + 1) % cols);
      if (rows > 1) edges.emplace_back(v, ((r + 1) % rows) * cols + c);
    }
  return detail::normalise(std::move(edges));
}

/// Every pair of nodes: n(n − 1)/2 edges.
inline EdgeList complete_edges(int n) {
  detail::require_nodes("complete", "n", n, 1L << 16);
  EdgeList edges;
  edges.reserve(static_cast<std::size_t>(n) * static_cast<std::size_t>(n - 1) / 2);
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) edges.emplace_back(i, j);
  return edges;
}

/// Node 0 (the hub) linked to every other node.
inline EdgeList star_edges(int n) {
  detail::require_nodes("star", "n", n, detail::kMaxNodes);
  EdgeList edges;
  for (int j = 1; j < n; ++j) edges.emplace_back(0, j);
  return edges;
}

/// The dim-dimensional hypercube on 2^dim nodes: i ~ i XOR 2^k for k < dim. dim = 0 is one node.
inline EdgeList hypercube_edges(int dim) {
  decopt::detail::require(dim >= 0 && dim <= 30,
                          "hypercube: dim must be in [0, 30] (got " + std::to_string(dim) + ")");
  const int n = 1 << dim;
  EdgeList edges;
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < dim; ++k) {
      const int j = i ^ (1 << k);
      if (i < j) edges.emplace_back(i, j);
    }
  std::sort(edges.begin(), edges.end());
  return edges;
}

/// The static exponential graph (Ying et al., "Exponential graph is provably efficient for
/// decentralized deep training", NeurIPS 2021, made undirected): i ~ (i ± 2^k) mod n for every
/// 2^k < n. Degree about 2·⌈log2 n⌉ (less where i + 2^k ≡ i − 2^k'), diameter O(log n).
inline EdgeList exponential_edges(int n) {
  detail::require_nodes("exponential", "n", n, detail::kMaxNodes);
  EdgeList edges;
  for (int i = 0; i < n; ++i)
    for (long step = 1; step < n; step *= 2) edges.emplace_back(i, static_cast<int>((i + step) % n));
  return detail::normalise(std::move(edges));
}

/// How many independent G(n, p) draws erdos_renyi_edges tries before giving up.
inline constexpr int kErdosRenyiMaxDraws = 64;

/// A connected Erdős–Rényi graph G(n, p): each of the n(n−1)/2 pairs is linked independently with
/// probability p. Draw a (a = 0, 1, …) uses Rng::derive(seed, {n, a}); the first connected draw
/// is returned, so the result is a function of (n, p, seed) only. Pairs are visited with
/// geometric skips, O(n + edges). Throws ConfigError when no connected draw appears within
/// kErdosRenyiMaxDraws (p far below the connectivity threshold ln(n)/n).
inline EdgeList erdos_renyi_edges(int n, double p, std::uint64_t seed) {
  detail::require_nodes("erdos_renyi", "n", n, 1L << 20);
  decopt::detail::require(p > 0.0 && p <= 1.0, "erdos_renyi: p must be in (0, 1] (got " +
                                                   decopt::detail::format_double(p) + ")");
  const double log_q = std::log1p(-p);  // −inf when p = 1: every skip is 0
  EdgeList edges;
  for (int attempt = 0; attempt < kErdosRenyiMaxDraws; ++attempt) {
    Rng rng = Rng::derive(seed, {static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(attempt)});
    edges.clear();
    for (int i = 0; i + 1 < n; ++i) {
      long j = i + 1;
      while (true) {
        if (p < 1.0) {
          // Number of failures before the next success of a Bernoulli(p) sequence.
          const double skip = std::floor(std::log(1.0 - rng.uniform()) / log_q);
          j += skip >= static_cast<double>(n) ? n : static_cast<long>(skip);
        }
        if (j >= n) break;
        edges.emplace_back(i, static_cast<int>(j));
        ++j;
      }
    }
    const auto adj = decopt::detail::make_adjacency(n, edges);
    const auto label = decopt::detail::component_labels(
        n, [&](int v) -> const std::vector<int>& { return adj.neighbors[static_cast<std::size_t>(v)]; });
    if (std::all_of(label.begin(), label.end(), [](int l) { return l == 0; })) return edges;
  }
  throw ConfigError("erdos_renyi(n=" + std::to_string(n) + ", p=" + decopt::detail::format_double(p) +
                    "): no connected graph in " + std::to_string(kErdosRenyiMaxDraws) +
                    " draws; p is too small (connectivity needs p above ln(n)/n = " +
                    decopt::detail::format_double(std::log(static_cast<double>(n)) / n) + ")");
}

}  // namespace decopt::graphs
