// decopt/optimizer/lost_peer_repair.hpp — how a node goes on when a peer is lost
// (LostPeerPolicy::drop, decopt/transport/lost_peers.hpp).
//
// A peer N that stops at transport round R is missed by its neighbours in that round's collect;
// they mix rounds R and R+1 without it, and their round-(R+1) messages tell their own neighbours.
// At the first round boundary with the next exchange ≥ R + 2 every node knows every loss that
// changes its row, and switches to W' = Metropolis–Hastings on the remaining graph
// (Topology::without): w'_ij = 1/(1 + max(d'_i, d'_j)), w'_ii = 1 − Σ_j w'_ij. An edge's weight
// depends only on its two ends' degrees, so both ends of an edge compute the same w'_ij from what
// they know, and W' stays symmetric and doubly stochastic without any node seeing the whole
// network's state.
//
// Then s = w_ii x̂_i + Σ_j w_ij x̂_j must hold again for W'. The neighbours' x̂_j are not stored
// (O(d) state), so the repair is a resynchronisation over the edges that need it (the optimizer's
// raw-x̂ exchange, one message per such edge, per peer):
//   * a node next to a lost one recomputes s from scratch over its surviving neighbours (it cannot
//     subtract the lost x̂_N, which it never held);
//   * any other node whose row changed updates s += (w'_ii − w_ii) x̂_i + Σ_j (w'_ij − w_ij) x̂_j
//     over the changed edges only, exact to float rounding;
// and an edge takes part when its weight changed or either end is next to a lost node — both ends
// know both facts, so they agree on whom to exchange with. Nodes farther away exchange nothing.
//
// Needs a topology whose weights are Metropolis–Hastings already (the named generators' default):
// under another rule the nodes that do not hear of a loss would keep weights W' no longer matches.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/topology/topology.hpp"
#include "decopt/transport/lost_peers.hpp"

namespace decopt::detail {

/// One node's view of the lost peers: the weights in use and the losses applied so far.
class LostPeerRepair {
 public:
  /// What one repair does at a round boundary.
  struct Plan {
    Topology next;                // W' on the remaining graph
    std::vector<int> peers;       // surviving neighbours to exchange x̂ with, in neighbour order
    bool full = false;            // recompute s from scratch (this node is next to a newly lost one)
    std::vector<LostPeer> newly;  // the losses this repair applies
  };

  /// @throws ConfigError when the topology's weights are not Metropolis–Hastings
  LostPeerRepair(const Topology& topology, int rank) : original_(topology), current_(topology), rank_(rank) {
    require(topology.without({}) == topology,
            "on_lost_peer = drop recomputes Metropolis-Hastings weights on the remaining graph, but " + topology.name() +
                " has other weights; build it with WeightRule::MetropolisHastings (the default)");
  }

  /// Whether a loss known to the transport is due at the boundary before exchange `next_exchange`
  /// (every node it concerns knows it by then: seen at R, reported with R + 1) and not applied yet.
  [[nodiscard]] bool due(std::span<const LostPeer> known, long next_exchange) const {
    for (const LostPeer& p : known)
      if (p.round <= next_exchange - 2 && !applied_.contains(p.node)) return true;
    return false;
  }

  /// The repair of the due losses. @throws Error when the surviving graph is disconnected
  [[nodiscard]] Plan plan(std::span<const LostPeer> known, long next_exchange) const {
    Plan plan{current_, {}, false, {}};
    std::vector<int> lost;
    for (const LostPeer& p : applied_.peers()) lost.push_back(p.node);
    std::vector<char> newly_lost(static_cast<std::size_t>(current_.size()), 0);
    for (const LostPeer& p : known)
      if (p.round <= next_exchange - 2 && !applied_.contains(p.node)) {
        plan.newly.push_back(p);
        lost.push_back(p.node);
        newly_lost[static_cast<std::size_t>(p.node)] = 1;
      }
    plan.next = original_.without(lost);
    auto next_to_newly_lost = [&](int v) {
      for (const Edge& e : current_.neighbors(v))
        if (newly_lost[static_cast<std::size_t>(e.node)]) return true;
      return false;
    };
    plan.full = next_to_newly_lost(rank_);
    for (const Edge& e : current_.neighbors(rank_)) {
      if (newly_lost[static_cast<std::size_t>(e.node)]) continue;
      if (plan.full || next_to_newly_lost(e.node) || plan.next.weight(rank_, e.node) != e.weight)
        plan.peers.push_back(e.node);
    }
    return plan;
  }

  /// Makes the plan's W' the one in use.
  void commit(Plan plan) {
    current_ = std::move(plan.next);
    applied_.merge(plan.newly);
  }

  /// The losses applied so far, sorted by node, each with the transport round it was first missed.
  [[nodiscard]] std::span<const LostPeer> applied() const noexcept { return applied_.peers(); }
  /// The mixing matrix in use (the original one minus the applied losses).
  [[nodiscard]] const Topology& topology() const noexcept { return current_; }

 private:
  Topology original_;  // W before any loss
  Topology current_;   // W in use
  int rank_;
  LostSet applied_;
};

}  // namespace decopt::detail
