// What the lost-peer and rejoin tests of the optimizer share: the chorded ring, CHOCO-SGD's
// compressor, node-dependent starting models and the weights a simulation's running nodes mix with.
#pragma once

#include <decopt/decopt.hpp>

#include <cmath>
#include <cstddef>
#include <vector>

namespace decopt::test {

using Choco = ChocoSGD<>;

inline Choco::Compressor choco_compressor() { return Choco::Compressor(Dense{}, DitheredQuantizer{16, Norm::L2}, RawCoder{}); }

/// 7 nodes: the ring 0-1-…-6-0 with chords 0-2 and 0-3. Losing node 3 changes the rows of its
/// neighbours 0, 2, 4 and of nodes 1 and 6 (two hops: their edge to node 0, whose degree drops
/// from 4 to 3, goes from 1/5 to 1/4), not node 5's.
inline Topology chorded_ring() {
  return Topology::from_edges(7, {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 6}, {6, 0}, {0, 2}, {0, 3}});
}

/// n node-dependent starting models of d floats: x_ik = sin(7i + k).
inline std::vector<std::vector<float>> starting_models(int n, int d) {
  std::vector<std::vector<float>> models(static_cast<std::size_t>(n), std::vector<float>(static_cast<std::size_t>(d)));
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < d; ++k) models[static_cast<std::size_t>(i)][static_cast<std::size_t>(k)] = std::sin(7.0f * i + k);
  return models;
}

/// The weights each running node of `sim` mixes with, as a matrix (rows of stopped nodes empty).
template <class Sim>
Eigen::MatrixXd weights_in_use(const Sim& sim) {
  Eigen::MatrixXd W = Eigen::MatrixXd::Zero(sim.size(), sim.size());
  for (int i = 0; i < sim.size(); ++i) {
    if (!sim.alive(i)) continue;
    W(i, i) = sim.node(i).self_weight();
    for (const Edge& e : sim.node(i).neighbors()) W(i, e.node) = e.weight;
  }
  return W;
}

}  // namespace decopt::test
