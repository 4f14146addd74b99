// decopt/optimizer/lost_peer_repair.hpp — how a node goes on when a peer is lost, and how a lost
// node comes back (LostPeerPolicy::drop, NodeRejoin; decopt/transport/lost_peers.hpp).
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
// Rejoin, the inverse. A node N lost at R whose neighbours see it back at R2 (NodeRejoin) mixes
// again from exchange R2 + 2: at that boundary W'' = Metropolis–Hastings on the graph without the
// nodes still lost, computed the same way by every node whose row changes (the news of the rejoin
// has reached them as a loss's would), and s is repaired by the same rule, N counting as "changed":
//   * every surviving neighbour j of N sends N its x̂_j and its model x_j raw (a pull message);
//     N takes x := x_p from the lowest-ranked one p (a deterministic choice every transport makes
//     alike), sets x̂_N := x_N and sends it raw to every neighbour, and computes
//     s_N = w''_NN x̂_N + Σ_j w''_Nj x̂_j from scratch; its round counters are p's;
//   * N's neighbours recompute s from scratch (they are next to a changed node), the nodes two hops
//     away update s over their changed edges, as for a loss.
// N's local-update state (momentum, Adam's moments) restarts from zero and its RNG is derived
// afresh from (seed, rank, the rejoin exchange): what a restarted process would have, the same on
// every transport. Its compressor must keep no state of its own (a StatefulCompressor or a
// ModelAwareCompressor's per-neighbour supports would be stale on both ends).
// The rejoiner's own knowledge comes from its handshake (the transport's rejoin(): which of its
// neighbours are lost) and from the lost sets its neighbours' messages carry; a loss next to the
// rejoiner must have reached its neighbours by R2 (one round per hop over the surviving graph).
//
// Needs a topology whose weights are Metropolis–Hastings already (the named generators' default):
// under another rule the nodes that do not hear of a loss would keep weights W' no longer matches.
#pragma once

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/topology/topology.hpp"
#include "decopt/transport/lost_peers.hpp"

namespace decopt::detail {

/// One node's view of the lost peers: the weights in use and the losses and rejoins applied so far.
class LostPeerRepair {
 public:
  /// What one repair does at a round boundary.
  struct Plan {
    Topology next;                 // W' on the remaining graph
    std::vector<int> peers;        // neighbours in W' to exchange x̂ with, in the original neighbour order
    bool full = false;             // recompute s from scratch (next to a node lost or back, or back itself)
    std::vector<int> removed;      // the nodes W' leaves out, sorted
    std::vector<int> back;         // the nodes this repair brings back (kRepairDelay after their rejoin)
    std::vector<LostPeer> events;  // the losses and rejoins applied once this plan is committed
    [[nodiscard]] bool brings_back(int node) const { return std::binary_search(back.begin(), back.end(), node); }
  };

  /// @throws ConfigError when the topology's weights are not Metropolis–Hastings
  LostPeerRepair(const Topology& topology, int rank) : original_(topology), current_(topology), rank_(rank) {
    require(topology.without({}) == topology,
            "on_lost_peer = drop recomputes Metropolis-Hastings weights on the remaining graph, but " + topology.name() +
                " has other weights; build it with WeightRule::MetropolisHastings (the default)");
  }

  /// Whether the losses and rejoins known to the transport change what is applied at the boundary
  /// before exchange `next_exchange` (each is due kRepairDelay rounds after it was seen).
  [[nodiscard]] bool due(std::span<const LostPeer> known, long next_exchange) const {
    return events_at(known, next_exchange) != applied_;
  }

  /// The repair of a survivor at the boundary before `next_exchange`.
  /// @throws Error when the remaining graph is disconnected
  [[nodiscard]] Plan plan(std::span<const LostPeer> known, long next_exchange) const {
    Plan plan = start(known, next_exchange);
    std::vector<char> changed(static_cast<std::size_t>(original_.size()), 0);
    for (int v : removed_)
      if (!std::binary_search(plan.removed.begin(), plan.removed.end(), v)) {
        changed[static_cast<std::size_t>(v)] = 1;
        plan.back.push_back(v);
      }
    for (int v : plan.removed)
      if (!std::binary_search(removed_.begin(), removed_.end(), v)) changed[static_cast<std::size_t>(v)] = 1;
    auto touches = [&](int v) {  // next to a node lost or back at this boundary (both ends know it)
      for (const Edge& e : original_.neighbors(v))
        if (changed[static_cast<std::size_t>(e.node)]) return true;
      return false;
    };
    plan.full = touches(rank_);
    for (int j : running_neighbors(plan))
      if (plan.full || touches(j) || plan.next.weight(rank_, j) != current_.weight(rank_, j)) plan.peers.push_back(j);
    return plan;
  }

  /// The repair of node `rank` coming back itself at `next_exchange`: s from scratch, with every
  /// neighbour of W'. `known` must hold its neighbours' lost sets (their repair messages carry them).
  [[nodiscard]] Plan rejoin_plan(std::span<const LostPeer> known, long next_exchange) const {
    Plan plan = start(known, next_exchange);
    plan.full = true;
    plan.peers = running_neighbors(plan);
    return plan;
  }

  /// Makes the plan's W' the one in use.
  void commit(Plan plan) {
    current_ = std::move(plan.next);
    removed_ = std::move(plan.removed);
    applied_ = std::move(plan.events);
  }

  /// The losses applied so far, sorted by node, each with the transport round it was first missed
  /// and, once applied, the round its rejoin was seen (-1 while it is still lost).
  [[nodiscard]] std::span<const LostPeer> applied() const noexcept { return applied_; }
  /// The mixing matrix in use (the original one minus the nodes still lost).
  [[nodiscard]] const Topology& topology() const noexcept { return current_; }
  /// The original mixing matrix, before any loss.
  [[nodiscard]] const Topology& original() const noexcept { return original_; }

 private:
  /// The losses due by `next_exchange` (seen at least kRepairDelay rounds before), with their
  /// rejoins when those are due too; this node's own record left out.
  [[nodiscard]] std::vector<LostPeer> events_at(std::span<const LostPeer> known, long next_exchange) const {
    std::vector<LostPeer> events;
    for (const LostPeer& p : known)
      if (p.node != rank_ && p.round <= next_exchange - kRepairDelay)
        events.push_back({p.node, p.round, p.back_by(next_exchange) ? p.rejoin_round : -1});
    return events;
  }
  /// This node's neighbours that W' keeps, in the original neighbour order (the optimizer's).
  [[nodiscard]] std::vector<int> running_neighbors(const Plan& plan) const {
    std::vector<int> running;
    for (const Edge& e : original_.neighbors(rank_))
      if (!std::binary_search(plan.removed.begin(), plan.removed.end(), e.node)) running.push_back(e.node);
    return running;
  }
  /// W' on the graph without the nodes still lost at `next_exchange`, and the events it applies.
  [[nodiscard]] Plan start(std::span<const LostPeer> known, long next_exchange) const {
    Plan plan{current_, {}, false, {}, {}, events_at(known, next_exchange)};
    for (const LostPeer& p : plan.events)
      if (p.rejoin_round < 0) plan.removed.push_back(p.node);
    plan.next = original_.without(plan.removed);
    return plan;
  }

  Topology original_;  // W before any loss
  Topology current_;   // W in use
  int rank_;
  std::vector<int> removed_;       // the nodes current_ leaves out, sorted
  std::vector<LostPeer> applied_;  // the events current_ reflects, sorted by node
};

}  // namespace decopt::detail
