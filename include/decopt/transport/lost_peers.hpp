// decopt/transport/lost_peers.hpp — what a transport does when a neighbour stops answering, and
// how tests make one stop.
//
// LostPeerPolicy::fail (the default) keeps today's behaviour: a neighbour that does not deliver is
// a TransportError naming the rank, the neighbour and the round. LostPeerPolicy::drop makes the
// collect return the messages that did arrive (an empty span in the lost neighbour's slot) and
// remember the neighbour as lost from that round on; the optimizer repairs its mixing weights and
// its neighbour sum at a later round boundary (optimizer/lost_peer_repair.hpp).
//
// Knowledge of a loss travels with the messages: every post carries the sender's set of lost nodes
// (node, round first missed), and a collect merges its neighbours' sets into its own. A loss seen
// at round R by the lost node's neighbours therefore reaches every node two hops away with the
// round-(R+1) messages — exactly the nodes whose Metropolis–Hastings weights change — so every
// node can switch weights at the same round, R + 2, with no shared memory: in process
// (SimulatedNetwork, ThreadNetwork) the set rides beside the bytes; over MPI it would be a small
// frame header (a count and (node, round) pairs) in front of each message.
//
// Failure injection: NodeFailure{node, round} makes that node's endpoint throw NodeCrashed from its
// first post of a round >= `round`, so it posts nothing from that round on. ThreadNetwork::run ends
// that node's thread quietly, as a crashed process would, and its neighbours see the loss at once;
// the Simulation stops driving it. Rounds are transport rounds: one per optimizer round plus one per
// resynchronisation (Options::exchange_of_round converts).
//
// Rejoin, the inverse of a loss: NodeRejoin{node, round R2} (R2 after the node's injected failure)
// brings the node back. Its neighbours see the rejoin in their collect of round R2 (the restarted
// node connects to them) and note it in their lost set (LostPeer::rejoin_round), which their
// round-(R2+1) messages carry to the nodes two hops away; so every node whose Metropolis–Hastings
// row changes knows by the boundary before exchange R2 + kRepairDelay, exactly as for a loss. The
// node's slot stays empty, and nothing is delivered to it, until that exchange; from then on it
// posts and is posted to like any neighbour. The rejoiner's endpoint learns, when it comes back
// (rejoin()), which of its own neighbours are lost and drops the messages of the rounds it missed;
// the optimizer pulls a neighbour's model (optimizer/lost_peer_repair.hpp). A node fails at most
// once and rejoins at most once.
//
// MPI (decopt/mpi.hpp) has no drop policy yet: MpiTransport fails as before. Measured with Open MPI
// 4.1, 4 ranks, decopt-train --timeout 3: a rank stopped with SIGSTOP makes its neighbours end
// 3.1 s later with "rank 1 timed out after 3 s waiting for round 100 from neighbour (rank) 2" and
// MPI_Abort (exit 1); a rank killed with SIGKILL makes mpirun abort the whole job within 1.2 s with
// its own "process rank 2 ... exited on signal 9" (exit 137; no round: the survivors are killed
// before they notice); under mpirun --enable-recovery the survivors live on and end as for SIGSTOP
// after the timeout (4.1 s, a line naming rank, round and neighbour) — but mpirun then exits 0.
// A drop policy over MPI would add the lost set as a frame header in MpiTransport::post; the
// collectives decopt-train evaluates with (MPI_Iallreduce over MPI_COMM_WORLD) would still need
// the dead rank, i.e. a communicator shrink (ULFM's MPIX_Comm_shrink), which Open MPI 4.1 lacks.
#pragma once

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "decopt/core/error.hpp"

namespace decopt {

/// A neighbour did not deliver within the timeout, or the network was aborted.
struct TransportError : Error {
  explicit TransportError(const std::string& what) : Error("decopt: transport: " + what) {}
};

/// What a collect does about a neighbour that stopped answering (crashed, hung, killed).
enum class LostPeerPolicy {
  fail,  ///< a TransportError naming the rank, the neighbour and the round (the default)
  drop,  ///< deliver what arrived, remember the neighbour as lost, let the optimizer repair W and s
};

/// Rounds from a loss or a rejoin being seen by the node's neighbours (round R) to the exchange that
/// mixes with the new weights (R + 2): the news takes one more round to reach the nodes two hops away.
inline constexpr long kRepairDelay = 2;

/// A node that stopped answering, the transport round at which it was first missed, and the round
/// at which it rejoined (NodeRejoin), if it did.
struct LostPeer {
  int node = 0;
  long round = 0;
  long rejoin_round = -1;  ///< the transport round its neighbours saw it rejoin, or -1
  /// Whether it mixes again at exchange `exchange` (kRepairDelay rounds after its rejoin).
  [[nodiscard]] bool back_by(long exchange) const noexcept {
    return rejoin_round >= 0 && exchange >= rejoin_round + kRepairDelay;
  }
  friend bool operator==(const LostPeer&, const LostPeer&) = default;
};

/// An injected failure: `node` posts nothing from transport round `round` on.
struct NodeFailure {
  int node = 0;
  long round = 0;
};

/// An injected rejoin of a node an injected failure stopped: its neighbours see it back at
/// transport round `round` (> the failure's round), and it mixes again from exchange
/// `round` + kRepairDelay.
struct NodeRejoin {
  int node = 0;
  long round = 0;
};

/// Thrown by the post of a node whose injected failure is due: the node "crashes" there.
/// ThreadNetwork::run and Simulation treat it as the node's end, not as an error of the run.
struct NodeCrashed : Error {
  NodeCrashed(int crashed_node, long crashed_round)
      : Error("decopt: node " + std::to_string(crashed_node) + " stopped at round " + std::to_string(crashed_round) +
              " (injected failure)"),
        node(crashed_node), round(crashed_round) {}
  int node;
  long round;
};

namespace detail {

/// A set of lost nodes sorted by node, each with the earliest round anyone missed it.
class LostSet {
 public:
  /// Adds `peer`, or lowers the loss round / records the rejoin of a node already in the set.
  /// Returns whether it changed.
  bool add(LostPeer peer) {
    const auto it = std::lower_bound(peers_.begin(), peers_.end(), peer.node,
                                     [](const LostPeer& p, int node) { return p.node < node; });
    if (it != peers_.end() && it->node == peer.node) {
      const LostPeer before = *it;
      it->round = std::min(it->round, peer.round);
      it->rejoin_round = std::max(it->rejoin_round, peer.rejoin_round);
      return !(before == *it);
    }
    peers_.insert(it, peer);
    return true;
  }
  /// The entry of `node`, or nullptr.
  [[nodiscard]] const LostPeer* find(int node) const {
    const auto it = std::lower_bound(peers_.begin(), peers_.end(), node,
                                     [](const LostPeer& p, int n) { return p.node < n; });
    return it != peers_.end() && it->node == node ? &*it : nullptr;
  }
  void merge(std::span<const LostPeer> other) {
    for (const LostPeer& p : other) add(p);
  }
  [[nodiscard]] bool contains(int node) const { return find(node) != nullptr; }
  [[nodiscard]] std::span<const LostPeer> peers() const noexcept { return peers_; }
  [[nodiscard]] bool empty() const noexcept { return peers_.empty(); }
  void clear() noexcept { peers_.clear(); }

 private:
  std::vector<LostPeer> peers_;
};

/// The injected failures and rejoins of a network, checked when they are set.
class FailurePlan {
 public:
  /// @throws ConfigError for a node outside [0, n), a negative round, or a node with a rejoin
  void add(NodeFailure f, int n) {
    require(f.node >= 0 && f.node < n,
            "injected failure: node " + std::to_string(f.node) + " is outside [0, " + std::to_string(n) + ")");
    require(f.round >= 0, "injected failure: round " + std::to_string(f.round) + " of node " + std::to_string(f.node) +
                              " is negative");
    resize(n);
    require(rejoin_round(f.node) < 0, "injected failure: node " + std::to_string(f.node) +
                                          " already rejoins; a node fails at most once (inject failures before rejoins)");
    long& r = round_of_[static_cast<std::size_t>(f.node)];
    r = r < 0 ? f.round : std::min(r, f.round);
  }
  /// @throws ConfigError for a node that no injected failure stops, a rejoin at or before its
  ///         failure's round, or a second rejoin of the node
  void add(NodeRejoin j, int n) {
    require(j.node >= 0 && j.node < n,
            "injected rejoin: node " + std::to_string(j.node) + " is outside [0, " + std::to_string(n) + ")");
    resize(n);
    const long lost = failure_round(j.node);
    require(lost >= 0, "injected rejoin: node " + std::to_string(j.node) +
                           " is never lost (no injected failure stops it; inject the failure first)");
    require(j.round > lost, "injected rejoin: node " + std::to_string(j.node) + " rejoins at round " +
                                std::to_string(j.round) + ", not after its loss at round " + std::to_string(lost));
    require(rejoin_round(j.node) < 0, "injected rejoin: node " + std::to_string(j.node) + " rejoins twice");
    rejoin_of_[static_cast<std::size_t>(j.node)] = j.round;
  }
  /// Throws NodeCrashed when `node` is due to stop at `round` (and not yet back from its rejoin).
  void check_post(int node, long round) const {
    const long r = failure_round(node);
    if (r >= 0 && round >= r && !back_by(node, round)) throw NodeCrashed(node, round);
  }
  /// The round `node` stops at, or -1.
  [[nodiscard]] long failure_round(int node) const { return at(round_of_, node); }
  /// The round `node`'s neighbours see it rejoin, or -1.
  [[nodiscard]] long rejoin_round(int node) const { return at(rejoin_of_, node); }
  /// Whether `node` rejoined and mixes again at exchange `round`.
  [[nodiscard]] bool back_by(int node, long round) const {
    return LostPeer{node, 0, rejoin_round(node)}.back_by(round);
  }
  /// What a neighbour of `node` knows of it at `round`, having missed it since `lost_round`: the
  /// rejoin once `round` has reached the rejoin round.
  [[nodiscard]] LostPeer seen_at(int node, long lost_round, long round) const {
    const long back = rejoin_round(node);
    return {node, lost_round, back >= 0 && round >= back ? back : -1};
  }

 private:
  void resize(int n) {
    round_of_.resize(static_cast<std::size_t>(n), -1);
    rejoin_of_.resize(static_cast<std::size_t>(n), -1);
  }
  static long at(const std::vector<long>& v, int node) {
    return node >= 0 && static_cast<std::size_t>(node) < v.size() ? v[static_cast<std::size_t>(node)] : -1;
  }
  std::vector<long> round_of_;   // per node: the round it stops at, or -1
  std::vector<long> rejoin_of_;  // per node: the round it rejoins at, or -1
};

/// The error of the fail policy when a neighbour is known to have stopped.
inline TransportError neighbor_stopped(int rank, int neighbor, long round) {
  return TransportError("node " + std::to_string(rank) + " lost neighbour " + std::to_string(neighbor) +
                        " at round " + std::to_string(round) +
                        ": it stopped (crashed) and posts nothing more (on_lost_peer = fail; use drop to continue without it)");
}

}  // namespace detail
}  // namespace decopt
