// decopt/transport/simulated_network.hpp — n nodes in one process, in lockstep, no threads.
//
// The embedded default and the reference for determinism: every node posts its round-t message,
// then every node collects. Nothing is copied: a neighbour reads the sender's own message buffer,
// which stays valid until the sender's next post. Collecting a message that was not posted yet is
// a driving error (a node finished a round before all nodes began it) and throws.
//
// post_to / collect_from (PeerTransport) do the same one neighbour at a time, for time-varying
// schedules: build the network on the schedule's union graph. post_queued / try_receive /
// next_arrival (decopt/transport/queued_receive.hpp) queue copies per neighbour instead, taken
// when the receiver's virtual clock has passed their arrival: asynchronous gossip.
//
// Under a LinkModel each node keeps a virtual clock: the optimizer advances it by the time it
// really computed; a message posted at time t over a link arrives at t + queueing + bytes/bandwidth
// + latency (link_model.hpp); collecting moves the clock to the latest arrival. So communication
// cost and its overlap with computation can be studied deterministically on one machine. With
// LinkModel::declared_compute the clock counts the compute the driver declared instead of the
// measured time (declared_compute.hpp), so simulated seconds no longer depend on the machine.
//
// Lost peers (lost_peers.hpp): inject_failure makes a node's post throw NodeCrashed from a round on;
// a neighbour collecting that round then sees the node stopped and, under LostPeerPolicy::drop,
// gets an empty span in its slot and the node in lost_peers(); under fail, a TransportError.
// inject_rejoin brings it back: its neighbours see the rejoin in their collect of its rejoin round
// R2, its slot stays empty until exchange R2 + kRepairDelay and holds its messages from then on.
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/topology/topology.hpp"
#include "decopt/transport/link_model.hpp"
#include "decopt/transport/lost_peers.hpp"
#include "decopt/transport/queued_receive.hpp"
#include "decopt/transport/transport.hpp"

namespace decopt {

class SimulatedNetwork {
 public:
  /// One node's endpoint; satisfies the Transport concept.
  class Endpoint {
   public:
    [[nodiscard]] int rank() const noexcept { return rank_; }
    [[nodiscard]] int degree() const noexcept { return static_cast<int>(network_->topology_.neighbors(rank_).size()); }
    /// The neighbours this endpoint exchanges with, in topology order (the optimizer checks them
    /// against its own topology).
    [[nodiscard]] std::vector<int> neighbor_ranks() const {
      std::vector<int> ranks;
      for (const Edge& e : network_->topology_.neighbors(rank_)) ranks.push_back(e.node);
      return ranks;
    }

    void post(long round, std::span<const std::byte> message) {
      stop_if_due(round);
      auto& slot = network_->slots_[static_cast<std::size_t>(rank_)];
      slot.round = round;
      slot.message = message;
      slot.lost.assign(lost_.peers().begin(), lost_.peers().end());
      slot.arrival.resize(links_.size());
      for (std::size_t k = 0; k < links_.size(); ++k) slot.arrival[k] = links_[k].send(clock_, message.size(), network_->link_);
    }

    void collect(long round, std::vector<std::span<const std::byte>>& inbox) {
      const auto neighbors = network_->topology_.neighbors(rank_);
      inbox.resize(neighbors.size());
      for (std::size_t k = 0; k < neighbors.size(); ++k) {
        const int peer = neighbors[k].node;
        const auto& slot = network_->slots_[static_cast<std::size_t>(peer)];
        if (slot.round != round && missing(peer, round)) {
          inbox[k] = {};
          continue;
        }
        if (slot.round != round)
          throw Error("decopt: SimulatedNetwork: node " + std::to_string(rank_) + " collects round " +
                      std::to_string(round) + " but neighbour " + std::to_string(peer) +
                      " has not posted it; begin every node's round before finishing any");
        inbox[k] = slot.message;
        lost_.merge(slot.lost);
        clock_ = std::max(clock_, slot.arrival[static_cast<std::size_t>(slot_at_neighbor_[k])]);
      }
    }

    /// Sends `message` to neighbour `peer` only (PeerTransport); it stays readable until this
    /// endpoint's next post_to to the same peer.
    void post_to(long round, int peer, std::span<const std::byte> message) {
      stop_if_due(round);
      const std::size_t k = slot_of(peer);
      PeerSlot& slot = peer_out_[k];
      slot.round = round;
      slot.message = message;
      slot.lost.assign(lost_.peers().begin(), lost_.peers().end());
      slot.arrival = links_[k].send(clock_, message.size(), network_->link_);
    }

    /// Neighbour `peer`'s round-`round` message to this node (PeerTransport).
    /// @throws Error naming this node, the peer and the round when the peer has not posted it to us
    [[nodiscard]] std::span<const std::byte> collect_from(long round, int peer) {
      const std::size_t k = slot_of(peer);
      const Endpoint& sender = network_->endpoints_[static_cast<std::size_t>(peer)];
      const PeerSlot& slot = sender.peer_out_[static_cast<std::size_t>(slot_at_neighbor_[k])];
      if (slot.round != round && missing(peer, round)) return {};
      if (slot.round != round)
        throw Error("decopt: SimulatedNetwork: node " + std::to_string(rank_) + " collects round " +
                    std::to_string(round) + " from neighbour " + std::to_string(peer) +
                    " but that neighbour has not posted it to this node; begin every node's round before finishing any");
      clock_ = std::max(clock_, slot.arrival);
      lost_.merge(slot.lost);
      return slot.message;
    }

    [[nodiscard]] LostPeerPolicy lost_peer_policy() const noexcept { return network_->policy_; }
    /// The nodes this endpoint knows to be lost: its neighbours it missed, and what its neighbours'
    /// messages reported (lost_peers.hpp), sorted by node, each with the round first missed.
    [[nodiscard]] std::span<const LostPeer> lost_peers() const noexcept { return lost_.peers(); }

    /// A rejoining node's handshake when it comes back at exchange `round` (NodeRejoin): it learns
    /// which of its neighbours are lost (and which of those are back by then) from their
    /// connections, as a restarted process would. @throws ConfigError when no rejoin is planned
    void rejoin(long round) {
      detail::require(network_->failures_.back_by(rank_, round),
                      "SimulatedNetwork: node " + std::to_string(rank_) + " has no rejoin due by round " + std::to_string(round));
      for (const Edge& e : network_->topology_.neighbors(rank_)) {
        const long stopped = network_->stopped_at_[static_cast<std::size_t>(e.node)];
        if (stopped >= 0) lost_.add(network_->failures_.seen_at(e.node, stopped, round - kRepairDelay));
      }
    }

    /// Adds `seconds` of measured computation to this node's virtual clock — or, under a
    /// LinkModel with declared_compute, the compute declared for this node since the last advance.
    void advance(double seconds) {
      DeclaredCompute* declared = network_->link_.declared_compute;
      clock_ += declared != nullptr ? declared->take(rank_) : seconds;
    }
    /// This node's virtual time in seconds.
    [[nodiscard]] double virtual_time() const noexcept { return clock_; }

    // ---- queued receive (decopt/transport/queued_receive.hpp: asynchronous gossip) ----

    /// Files a copy of `message` in every neighbour's queue from this node, arriving at this
    /// node's virtual time + the link model's queueing, transfer and latency.
    void post_queued(long round, std::span<const std::byte> message) {
      const auto neighbors = network_->topology_.neighbors(rank_);
      for (std::size_t k = 0; k < neighbors.size(); ++k) {
        Endpoint& to = network_->endpoints_[static_cast<std::size_t>(neighbors[k].node)];
        to.inbound_[static_cast<std::size_t>(slot_at_neighbor_[k])].push_back(
            {round, links_[k].send(clock_, message.size(), network_->link_), {message.begin(), message.end()}});
      }
    }

    /// Takes neighbour slot `slot`'s next message if it has arrived by this node's virtual time;
    /// the bytes stay valid until the next take from that slot. @throws ConfigError for a bad slot
    [[nodiscard]] std::optional<ArrivedMessage> try_receive(std::size_t slot) {
      auto& queue = inbound_queue(slot);
      if (queue.empty() || queue.front().arrival > clock_) return std::nullopt;
      held_.resize(inbound_.size());
      held_[slot] = std::move(queue.front());
      queue.pop_front();
      return ArrivedMessage{held_[slot].round, std::span<const std::byte>(held_[slot].bytes)};
    }

    /// The virtual arrival time of neighbour slot `slot`'s next message, or none when it has
    /// posted nothing not yet taken (an event-driven driver moves the clock to it).
    [[nodiscard]] std::optional<double> next_arrival(std::size_t slot) const {
      const auto& queue = inbound_queue(slot);
      return queue.empty() ? std::nullopt : std::optional<double>(queue.front().arrival);
    }

    /// Messages from neighbour slot `slot` not yet taken (arrived or in transit).
    [[nodiscard]] std::size_t queued(std::size_t slot) const { return inbound_queue(slot).size(); }

   private:
    friend class SimulatedNetwork;
    struct PeerSlot {  // the last post_to to one neighbour
      long round = -1;
      std::span<const std::byte> message;
      double arrival = 0;
      std::vector<LostPeer> lost;  // the sender's lost set when it posted
    };
    /// An injected failure due at `round`: this node stops (NodeCrashed), until its rejoin if it has
    /// one (its own lost set then lists it with the rejoin round).
    void stop_if_due(long round) {
      try {
        network_->failures_.check_post(rank_, round);
      } catch (const NodeCrashed&) {
        long& stopped = network_->stopped_at_[static_cast<std::size_t>(rank_)];
        if (stopped < 0) stopped = round;
        if (network_->failures_.rejoin_round(rank_) >= 0) lost_.add({rank_, stopped, network_->failures_.rejoin_round(rank_)});
        throw;
      }
    }
    /// Whether `peer`, which has not posted `round`, is lost (true: the slot is empty) rather than
    /// behind (false: a driving error). Under the fail policy a stopped peer is a TransportError.
    /// A lost peer's rejoin is seen from its rejoin round on; from kRepairDelay rounds later it is
    /// a neighbour again.
    bool missing(int peer, long round) {
      if (const LostPeer* known = lost_.find(peer)) {
        lost_.add(network_->failures_.seen_at(peer, known->round, round));
        return !lost_.find(peer)->back_by(round);
      }
      const long stopped = network_->stopped_at_[static_cast<std::size_t>(peer)];
      if (stopped < 0 || stopped > round) return false;
      if (network_->policy_ == LostPeerPolicy::fail) throw detail::neighbor_stopped(rank_, peer, round);
      lost_.add({peer, round});
      return true;
    }
    /// The index of `peer` in this node's neighbour list.
    /// @throws ConfigError when peer is not a neighbour in the network's topology
    [[nodiscard]] std::size_t slot_of(int peer) const {
      const auto neighbors = network_->topology_.neighbors(rank_);
      for (std::size_t k = 0; k < neighbors.size(); ++k)
        if (neighbors[k].node == peer) return k;
      throw ConfigError("SimulatedNetwork: node " + std::to_string(peer) + " is not a neighbour of node " +
                        std::to_string(rank_) + " in " + network_->topology_.name());
    }

    struct Queued {  // a post_queued message on its way to this node
      long round = -1;
      double arrival = 0;
      std::vector<std::byte> bytes;
    };
    template <class Self>
    static auto& inbound_queue_of(Self& self, std::size_t slot) {
      detail::require(slot < self.inbound_.size(), "SimulatedNetwork: node " + std::to_string(self.rank_) +
                                                       " has no neighbour slot " + std::to_string(slot));
      return self.inbound_[slot];
    }
    std::deque<Queued>& inbound_queue(std::size_t slot) { return inbound_queue_of(*this, slot); }
    const std::deque<Queued>& inbound_queue(std::size_t slot) const { return inbound_queue_of(*this, slot); }

    SimulatedNetwork* network_ = nullptr;
    int rank_ = 0;
    double clock_ = 0;
    std::vector<LinkClock> links_;        // my outgoing links, in neighbour order
    std::vector<int> slot_at_neighbor_;  // my index in each neighbour's neighbour list
    std::vector<PeerSlot> peer_out_;     // per-peer messages, in neighbour order
    detail::LostSet lost_;               // the lost nodes this endpoint knows of
    std::vector<std::deque<Queued>> inbound_;  // post_queued messages to me, per neighbour slot
    std::vector<Queued> held_;                 // the last taken message of each slot
  };

  /// @throws ConfigError for an invalid link model, or a declared_compute sized for another node count
  explicit SimulatedNetwork(Topology topology, LinkModel link = {}) : topology_(std::move(topology)), link_(link) {
    link_.validate();
    detail::require(link_.declared_compute == nullptr || link_.declared_compute->size() == topology_.size(),
                    "SimulatedNetwork: LinkModel::declared_compute has " +
                        std::to_string(link_.declared_compute ? link_.declared_compute->size() : 0) + " nodes, the topology " +
                        std::to_string(topology_.size()));
    const auto n = static_cast<std::size_t>(topology_.size());
    slots_.resize(n);
    stopped_at_.assign(n, -1);
    endpoints_.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      auto& e = endpoints_[i];
      e.network_ = this;
      e.rank_ = static_cast<int>(i);
      e.links_.resize(topology_.neighbors(e.rank_).size());
      e.peer_out_.resize(e.links_.size());
      e.inbound_.resize(e.links_.size());
      e.slot_at_neighbor_ = detail::reverse_neighbor_slots(topology_, e.rank_);
    }
  }
  SimulatedNetwork(const SimulatedNetwork&) = delete;  // endpoints point back at the network
  SimulatedNetwork& operator=(const SimulatedNetwork&) = delete;

  [[nodiscard]] int size() const noexcept { return topology_.size(); }
  [[nodiscard]] const Topology& topology() const noexcept { return topology_; }
  [[nodiscard]] const LinkModel& link_model() const noexcept { return link_; }
  /// The latest virtual time over all nodes: the simulated wall time of the run so far.
  [[nodiscard]] double virtual_time() const noexcept {
    double t = 0;
    for (const auto& e : endpoints_) t = std::max(t, e.clock_);
    return t;
  }
  [[nodiscard]] Endpoint& endpoint(int rank) {
    detail::require(rank >= 0 && rank < size(), "SimulatedNetwork::endpoint: rank " + std::to_string(rank) +
                                                    " outside [0, " + std::to_string(size()) + ")");
    return endpoints_[static_cast<std::size_t>(rank)];
  }

  /// What a collect does about a neighbour that stopped (lost_peers.hpp); set before the run.
  void set_lost_peer_policy(LostPeerPolicy policy) noexcept { policy_ = policy; }
  [[nodiscard]] LostPeerPolicy lost_peer_policy() const noexcept { return policy_; }
  /// Makes `failure.node` post nothing from `failure.round` on (its post throws NodeCrashed).
  /// @throws ConfigError for a node out of range or a negative round
  void inject_failure(NodeFailure failure) { failures_.add(failure, size()); }
  /// Brings `rejoin.node` back: seen by its neighbours at `rejoin.round`, a neighbour again from
  /// exchange `rejoin.round` + kRepairDelay (lost_peers.hpp). Inject its failure first.
  /// @throws ConfigError naming the node when no injected failure stops it, or when the rejoin is
  ///         not after the failure's round
  void inject_rejoin(NodeRejoin rejoin) { failures_.add(rejoin, size()); }
  /// The round `node`'s neighbours see it rejoin (NodeRejoin), or -1.
  [[nodiscard]] long rejoin_round(int node) const { return failures_.rejoin_round(node); }
  /// The round at which `node` stopped (its post threw NodeCrashed), or -1 while it runs; it stays
  /// set after a rejoin (rejoin_round() says when it came back).
  [[nodiscard]] long stopped_at(int node) const { return stopped_at_.at(static_cast<std::size_t>(node)); }

 private:
  struct Slot {
    long round = -1;
    std::span<const std::byte> message;
    std::vector<double> arrival;  // virtual arrival time at each of the sender's neighbours
    std::vector<LostPeer> lost;   // the sender's lost set when it posted
  };
  Topology topology_;
  LinkModel link_;
  std::vector<Slot> slots_;
  std::vector<Endpoint> endpoints_;
  LostPeerPolicy policy_ = LostPeerPolicy::fail;
  detail::FailurePlan failures_;
  std::vector<long> stopped_at_;  // per node: the round its injected failure stopped it, or -1
};

}  // namespace decopt
