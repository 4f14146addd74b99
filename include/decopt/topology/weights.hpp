// decopt/topology/weights.hpp — mixing-weight rules: from an undirected graph to the rows of a
// symmetric doubly stochastic W, stored sparsely (CSR: per node its neighbours sorted by index,
// and its self weight).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "decopt/topology/edge.hpp"

namespace decopt {

/// The sparse rows of a mixing matrix: node i's neighbours are
/// edges[offsets[i] .. offsets[i+1]) (sorted by node, self excluded); its self weight is
/// self_weights[i].
struct SparseMixing {
  std::vector<std::size_t> offsets;
  std::vector<Edge> edges;
  std::vector<double> self_weights;
};

namespace detail {

/// w_ii = 1 − c/(1 + m) when all c neighbours of i have the same weight 1/(1 + m), computed as the
/// correctly rounded ratio (1 + m − c)/(1 + m). This is why complete(n) has self weight exactly
/// 1/n, bit-equal to its edge weights, and ring(n) exactly 1/3.
inline double uniform_self_weight(long count, long one_plus_m) noexcept {
  return static_cast<double>(one_plus_m - count) / static_cast<double>(one_plus_m);
}

}  // namespace detail

/// Applies a weight rule to an undirected simple graph.
///
///  * Metropolis–Hastings: w_ij = 1/(1 + max(d_i, d_j)), w_ii = 1 − Σ_j w_ij.
///  * Max degree:          w_ij = 1/(1 + Δ),              w_ii = 1 − d_i/(1 + Δ).
///
/// Self weights are at least 1/(1 + d_i) > 0 in both cases. When every neighbour of i carries the
/// same weight 1/(1+m) the self weight is the correctly rounded (1 + m − d_i)/(1 + m); otherwise
/// it is 1 minus the sum of the row's weights added smallest first.
inline SparseMixing apply_weight_rule(const detail::Adjacency& adj, WeightRule rule) {
  const int n = adj.size();
  int max_degree = 0;
  for (int i = 0; i < n; ++i) max_degree = std::max(max_degree, adj.degree(i));

  SparseMixing w;
  w.offsets.assign(static_cast<std::size_t>(n) + 1, 0);
  w.self_weights.assign(static_cast<std::size_t>(n), 1.0);
  std::size_t total = 0;
  for (int i = 0; i < n; ++i) total += static_cast<std::size_t>(adj.degree(i));
  w.edges.reserve(total);

  std::vector<double> row;
  for (int i = 0; i < n; ++i) {
    const auto& list = adj.neighbors[static_cast<std::size_t>(i)];
    const int di = adj.degree(i);
    w.offsets[static_cast<std::size_t>(i)] = w.edges.size();
    if (rule == WeightRule::MaxDegree) {
      const double wij = 1.0 / (1.0 + max_degree);
      for (int j : list) w.edges.push_back({j, wij});
      w.self_weights[static_cast<std::size_t>(i)] = detail::uniform_self_weight(di, 1L + max_degree);
      continue;
    }
    bool uniform = true;
    int first_m = -1;
    row.clear();
    for (int j : list) {
      const int m = std::max(di, adj.degree(j));
      if (first_m < 0) first_m = m;
      uniform = uniform && m == first_m;
      const double wij = 1.0 / (1.0 + m);
      w.edges.push_back({j, wij});
      row.push_back(wij);
    }
    if (list.empty()) {
      w.self_weights[static_cast<std::size_t>(i)] = 1.0;
    } else if (uniform) {
      w.self_weights[static_cast<std::size_t>(i)] = detail::uniform_self_weight(di, 1L + first_m);
    } else {
      std::sort(row.begin(), row.end());
      double sum = 0.0;
      for (double v : row) sum += v;
      w.self_weights[static_cast<std::size_t>(i)] = 1.0 - sum;
    }
  }
  w.offsets[static_cast<std::size_t>(n)] = w.edges.size();
  return w;
}

}  // namespace decopt
