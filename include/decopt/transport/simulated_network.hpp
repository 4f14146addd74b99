// decopt/transport/simulated_network.hpp — n nodes in one process, in lockstep, no threads.
//
// The embedded default and the reference for determinism: every node posts its round-t message,
// then every node collects. Nothing is copied: a neighbour reads the sender's own message buffer,
// which stays valid until the sender's next post. Collecting a message that was not posted yet is
// a driving error (a node finished a round before all nodes began it) and throws.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/topology/topology.hpp"

namespace decopt {

class SimulatedNetwork {
 public:
  /// One node's endpoint; satisfies the Transport concept.
  class Endpoint {
   public:
    [[nodiscard]] int rank() const noexcept { return rank_; }
    [[nodiscard]] int degree() const noexcept { return static_cast<int>(network_->topology_.neighbors(rank_).size()); }

    void post(long round, std::span<const std::byte> message) {
      auto& slot = network_->slots_[static_cast<std::size_t>(rank_)];
      slot.round = round;
      slot.message = message;
    }

    void collect(long round, std::vector<std::span<const std::byte>>& inbox) const {
      const auto neighbors = network_->topology_.neighbors(rank_);
      inbox.resize(neighbors.size());
      for (std::size_t k = 0; k < neighbors.size(); ++k) {
        const auto& slot = network_->slots_[static_cast<std::size_t>(neighbors[k].node)];
        if (slot.round != round)
          throw Error("decopt: SimulatedNetwork: node " + std::to_string(rank_) + " collects round " +
                      std::to_string(round) + " but neighbour " + std::to_string(neighbors[k].node) +
                      " has not posted it; begin every node's round before finishing any");
        inbox[k] = slot.message;
      }
    }

   private:
    friend class SimulatedNetwork;
    SimulatedNetwork* network_ = nullptr;
    int rank_ = 0;
  };

  explicit SimulatedNetwork(Topology topology) : topology_(std::move(topology)) {
    const auto n = static_cast<std::size_t>(topology_.size());
    slots_.resize(n);
    endpoints_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      endpoints_[i].network_ = this;
      endpoints_[i].rank_ = static_cast<int>(i);
    }
  }
  SimulatedNetwork(const SimulatedNetwork&) = delete;  // endpoints point back at the network
  SimulatedNetwork& operator=(const SimulatedNetwork&) = delete;

  [[nodiscard]] int size() const noexcept { return topology_.size(); }
  [[nodiscard]] const Topology& topology() const noexcept { return topology_; }
  [[nodiscard]] Endpoint& endpoint(int rank) {
    detail::require(rank >= 0 && rank < size(), "SimulatedNetwork::endpoint: rank " + std::to_string(rank) +
                                                    " outside [0, " + std::to_string(size()) + ")");
    return endpoints_[static_cast<std::size_t>(rank)];
  }

 private:
  struct Slot {
    long round = -1;
    std::span<const std::byte> message;
  };
  Topology topology_;
  std::vector<Slot> slots_;
  std::vector<Endpoint> endpoints_;
};

}  // namespace decopt
