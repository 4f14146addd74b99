// decopt/optimizer/neighbor_sum_error.hpp — how far each node's incremental s is from
// w_ii x̂_i + Σ_j w_ij x̂_j recomputed from every node's public copy, for nodes of one process.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>

namespace decopt {

/// max over nodes and coordinates of |s − (w_ii x̂_i + Σ_j w_ij x̂_j)|, the sum recomputed in double
/// from every node's x̂ (nodes[j] is node j). Rounding only, once every message is applied.
/// Only the nodes i with counted(i) are measured (the survivors of a run that lost nodes: their
/// neighbours after the repair are survivors too).
/// @tparam Node has neighbor_sum(), public_copy(), self_weight() and neighbors() (DecentralizedOptimizer, AsyncGossip)
template <class Node, class Counted = bool (*)(std::size_t)>
double neighbor_sum_error(std::span<const Node> nodes, Counted counted = [](std::size_t) { return true; }) {
  double worst = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (!counted(i)) continue;
    const Node& node = nodes[i];
    const auto s = node.neighbor_sum();
    const auto own = node.public_copy();
    for (std::size_t k = 0; k < s.size(); ++k) {
      double exact = node.self_weight() * own[k];
      for (const auto& e : node.neighbors()) exact += e.weight * nodes[static_cast<std::size_t>(e.node)].public_copy()[k];
      worst = std::max(worst, std::abs(exact - static_cast<double>(s[k])));
    }
  }
  return worst;
}

}  // namespace decopt
