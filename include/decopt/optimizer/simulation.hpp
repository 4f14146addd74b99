// decopt/optimizer/simulation.hpp — n optimizer nodes driven in lockstep in one process.
//
// Each round begins every node's round (local steps, compression, post) and then finishes every
// node's round (collect, consensus, prox), over a SimulatedNetwork: deterministic, no threads.
// The nodes are the same DecentralizedOptimizer objects a threaded or MPI run uses.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/optimizer/options.hpp"
#include "decopt/transport/simulated_network.hpp"

namespace decopt {

/// What one simulated round did over all nodes.
struct NetworkRoundStats {
  long round = 0;
  std::uint64_t bytes_sent = 0;      ///< over all nodes
  std::uint64_t max_message_bytes = 0;
  double mean_loss = std::nan("");   ///< mean of the nodes' losses, when the callback returns them
  double compute_seconds = 0;        ///< summed over nodes
  long skipped_nodes = 0;
};

/// Mean squared distance of the nodes' models to their average: (1/n) Σ_i ‖x_i − x̄‖².
inline double consensus_distance(std::span<const std::span<float>> models) {
  if (models.empty()) return 0;
  const std::size_t d = models[0].size();
  std::vector<double> mean(d, 0.0);
  for (auto m : models)
    for (std::size_t k = 0; k < d; ++k) mean[k] += m[k];
  for (auto& v : mean) v /= static_cast<double>(models.size());
  double total = 0;
  for (auto m : models)
    for (std::size_t k = 0; k < d; ++k) total += (m[k] - mean[k]) * (m[k] - mean[k]);
  return total / static_cast<double>(models.size());
}

/**
 * @brief n nodes of `Optimizer` (a DecentralizedOptimizer) over user buffers, in lockstep.
 *
 * The buffers are the users' (one per node, same size), updated in place.
 */
template <class Optimizer>
class Simulation {
 public:
  /// @param link latency and bandwidth of every link, applied to the nodes' virtual clocks
  Simulation(const Topology& topology, std::vector<std::span<float>> buffers, Options options = {},
             typename Optimizer::Compressor compressor = {}, typename Optimizer::Prox prox = {}, LinkModel link = {})
      : network_(std::make_unique<SimulatedNetwork>(topology, link)), buffers_(std::move(buffers)) {
    detail::require(static_cast<int>(buffers_.size()) == topology.size(),
                    "Simulation: " + std::to_string(buffers_.size()) + " parameter buffers for " +
                        std::to_string(topology.size()) + " nodes");
    for (std::size_t i = 0; i < buffers_.size(); ++i)
      detail::require(buffers_[i].size() == buffers_[0].size(),
                      "Simulation: buffer of node " + std::to_string(i) + " has " + std::to_string(buffers_[i].size()) +
                          " parameters, node 0 has " + std::to_string(buffers_[0].size()));
    nodes_.reserve(buffers_.size());
    for (std::size_t i = 0; i < buffers_.size(); ++i)
      nodes_.emplace_back(buffers_[i], topology, network_->endpoint(static_cast<int>(i)), options, compressor, prox);
  }

  [[nodiscard]] int size() const noexcept { return static_cast<int>(nodes_.size()); }
  [[nodiscard]] Optimizer& node(int i) { return nodes_.at(static_cast<std::size_t>(i)); }
  [[nodiscard]] const Optimizer& node(int i) const { return nodes_.at(static_cast<std::size_t>(i)); }
  [[nodiscard]] std::span<const std::span<float>> models() const noexcept { return buffers_; }
  [[nodiscard]] const Topology& topology() const noexcept { return network_->topology(); }
  /// Simulated wall time so far under the LinkModel: real compute time plus modelled communication.
  [[nodiscard]] double virtual_time() const noexcept { return network_->virtual_time(); }

  /// One lockstep round. `grad(node, x, g)` computes node's gradient at x (may return the loss).
  /// An exception from any node poisons every node (they are all mid-round): reload a checkpoint.
  template <class Grad>
  NetworkRoundStats round(Grad&& grad) {
    try {
      return lockstep_round(grad);
    } catch (const std::exception& e) {
      for (auto& node : nodes_) node.mark_inconsistent(e.what());
      throw;
    }
  }

  /// (1/n) Σ_i ‖x_i − x̄‖².
  [[nodiscard]] double consensus_distance() const { return decopt::consensus_distance(buffers_); }

  /// x̄ = (1/n) Σ_i x_i.
  [[nodiscard]] std::vector<double> average_model() const {
    std::vector<double> mean(buffers_.empty() ? 0 : buffers_[0].size(), 0.0);
    for (auto m : buffers_)
      for (std::size_t k = 0; k < mean.size(); ++k) mean[k] += m[k];
    for (auto& v : mean) v /= static_cast<double>(buffers_.size());
    return mean;
  }

  /// Total bytes sent by all nodes so far.
  [[nodiscard]] std::uint64_t total_bytes_sent() const noexcept {
    std::uint64_t total = 0;
    for (const auto& node : nodes_) total += node.totals().bytes_sent;
    return total;
  }

 private:
  /// round() without the poisoning.
  template <class Grad>
  NetworkRoundStats lockstep_round(Grad& grad) {
    NetworkRoundStats stats;
    stats.round = nodes_.empty() ? 0 : nodes_[0].round();
    for (auto& node : nodes_) {
      const int i = node.rank();
      // Bind the node index; call_gradient (concepts.hpp) handles callbacks with or without a loss.
      node.begin_round([&grad, i](std::span<const float> x, std::span<float> g) -> decltype(auto) { return grad(i, x, g); });
    }
    double loss_sum = 0;
    int loss_count = 0;
    for (auto& node : nodes_) {
      const RoundStats s = node.finish_round();
      stats.bytes_sent += s.bytes_sent;
      stats.max_message_bytes = std::max(stats.max_message_bytes, s.message_bytes);
      stats.compute_seconds += s.compute_seconds;
      stats.skipped_nodes += s.skipped ? 1 : 0;
      if (std::isfinite(s.loss)) {
        loss_sum += s.loss;
        ++loss_count;
      }
    }
    if (loss_count > 0) stats.mean_loss = loss_sum / loss_count;
    if (!nodes_.empty() && nodes_[0].resync_due()) {  // every node is due at the same round
      for (auto& node : nodes_) node.begin_resync();
      for (auto& node : nodes_) node.finish_resync();
    }
    return stats;
  }

  std::unique_ptr<SimulatedNetwork> network_;  // endpoints point into it: keep its address stable
  std::vector<std::span<float>> buffers_;
  std::vector<Optimizer> nodes_;
};

}  // namespace decopt
