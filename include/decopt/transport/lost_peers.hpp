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

/// A node that stopped answering, and the transport round at which it was first missed.
struct LostPeer {
  int node = 0;
  long round = 0;
  friend bool operator==(const LostPeer&, const LostPeer&) = default;
};

/// An injected failure: `node` posts nothing from transport round `round` on.
struct NodeFailure {
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
  /// Adds `peer`, or lowers the round of a node already in the set. Returns whether it changed.
  bool add(LostPeer peer) {
    const auto it = std::lower_bound(peers_.begin(), peers_.end(), peer.node,
                                     [](const LostPeer& p, int node) { return p.node < node; });
    if (it != peers_.end() && it->node == peer.node) {
      if (it->round <= peer.round) return false;
      it->round = peer.round;
      return true;
    }
    peers_.insert(it, peer);
    return true;
  }
  void merge(std::span<const LostPeer> other) {
    for (const LostPeer& p : other) add(p);
  }
  [[nodiscard]] bool contains(int node) const {
    return std::binary_search(peers_.begin(), peers_.end(), LostPeer{node, 0},
                              [](const LostPeer& a, const LostPeer& b) { return a.node < b.node; });
  }
  [[nodiscard]] std::span<const LostPeer> peers() const noexcept { return peers_; }
  [[nodiscard]] bool empty() const noexcept { return peers_.empty(); }
  void clear() noexcept { peers_.clear(); }

 private:
  std::vector<LostPeer> peers_;
};

/// The injected failures of a network, checked when they are set.
class FailurePlan {
 public:
  /// @throws ConfigError for a node outside [0, n) or a negative round
  void add(NodeFailure f, int n) {
    require(f.node >= 0 && f.node < n,
            "injected failure: node " + std::to_string(f.node) + " is outside [0, " + std::to_string(n) + ")");
    require(f.round >= 0, "injected failure: round " + std::to_string(f.round) + " of node " + std::to_string(f.node) +
                              " is negative");
    round_of_.resize(static_cast<std::size_t>(n), -1);
    long& r = round_of_[static_cast<std::size_t>(f.node)];
    r = r < 0 ? f.round : std::min(r, f.round);
  }
  /// Throws NodeCrashed when `node` is due to stop at `round`.
  void check_post(int node, long round) const {
    if (static_cast<std::size_t>(node) < round_of_.size()) {
      const long r = round_of_[static_cast<std::size_t>(node)];
      if (r >= 0 && round >= r) throw NodeCrashed(node, round);
    }
  }

 private:
  std::vector<long> round_of_;  // per node: the round it stops at, or -1
};

/// The error of the fail policy when a neighbour is known to have stopped.
inline TransportError neighbor_stopped(int rank, int neighbor, long round) {
  return TransportError("node " + std::to_string(rank) + " lost neighbour " + std::to_string(neighbor) +
                        " at round " + std::to_string(round) +
                        ": it stopped (crashed) and posts nothing more (on_lost_peer = fail; use drop to continue without it)");
}

}  // namespace detail
}  // namespace decopt
