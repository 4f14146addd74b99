// decopt/transport/transport.hpp — what the optimizer needs from a network, and a non-owning
// handle to any transport.
//
// A transport is one node's end of the network. Each round the node posts ONE message that every
// neighbour receives (decopt's messages are broadcasts: the same compressed residual goes to all
// neighbours), then collects one message from each neighbour. Posting never waits for the
// neighbours; collecting waits until every neighbour's message of that round has arrived.
//
// A PeerTransport also sends one peer at a time (post_to / collect_from): a time-varying schedule's
// round reaches only that round's neighbours, and per-edge steps send each peer its own message.
//
// Determinism: inbox[k] is the message of topology.neighbors(rank)[k], whatever order the bytes
// arrived in, so the optimizer sums neighbours in a fixed order and every transport gives the same
// bits for the same seed.
#pragma once

#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/transport/lost_peers.hpp"

namespace decopt {

namespace detail {
/// For each neighbour j of `rank` (in neighbour order), the index of `rank` in j's neighbour list:
/// where a transport files rank's message in j's inbox.
template <class TopologyT>
std::vector<int> reverse_neighbor_slots(const TopologyT& topology, int rank) {
  std::vector<int> slots;
  for (const auto& edge : topology.neighbors(rank)) {
    const auto back = topology.neighbors(edge.node);
    int slot = 0;
    while (back[static_cast<std::size_t>(slot)].node != rank) ++slot;
    slots.push_back(slot);
  }
  return slots;
}
}  // namespace detail

/// One node's end of a network. `post(round, msg)`: the bytes stay valid and unchanged until the
/// next post() on the same endpoint. `collect(round, inbox)`: fills inbox with one span per
/// neighbour, in topology-neighbour order, valid until the next post() of this endpoint.
template <class T>
concept Transport = requires(T& t, long round, std::span<const std::byte> message,
                             std::vector<std::span<const std::byte>>& inbox) {
  { t.rank() } -> std::convertible_to<int>;
  { t.degree() } -> std::convertible_to<int>;
  t.post(round, message);
  t.collect(round, inbox);
};

/// A transport that can say whom it exchanges with: its neighbours' ranks in the order of its
/// inbox. The optimizer compares them with its topology's row, so a transport wired for another
/// graph with the same degrees is refused instead of mixing the wrong neighbours' messages.
template <class T>
concept NeighborListTransport = Transport<T> && requires(const T& t) {
  { t.neighbor_ranks() } -> std::convertible_to<std::vector<int>>;
};

/// A transport that keeps a virtual clock: the optimizer tells it how long the node computed
/// (SimulatedNetwork under a LinkModel). Transports that run in real time need not provide it.
template <class T>
concept VirtualClockTransport = Transport<T> && requires(T& t, double seconds) { t.advance(seconds); };

/// A transport that delivers to one peer at a time, for time-varying topologies whose round talks
/// to only some neighbours and for steps that send each peer its own message (per-edge error
/// memory). `post_to(round, peer, msg)`: only `peer` (a neighbour of the transport's graph, the
/// schedule's union graph) receives msg; the bytes stay valid and unchanged until the next
/// post_to to the same peer. `collect_from(round, peer)`: waits for peer's round-`round` message
/// and returns it, valid until the next collect_from from the same peer (or the next collect).
/// Messages of one peer arrive in the order posted; those of other peers are not touched. A round
/// uses either post/collect or post_to/collect_from, not both (they share the channels).
template <class T>
concept PeerTransport = Transport<T> && requires(T& t, long round, int peer, std::span<const std::byte> message) {
  t.post_to(round, peer, message);
  { t.collect_from(round, peer) } -> std::convertible_to<std::span<const std::byte>>;
};

/// A transport that can drop a neighbour that stopped answering (lost_peers.hpp): its policy, and
/// the lost nodes it knows of (its own missed neighbours and those its neighbours reported).
template <class T>
concept LossAwareTransport = Transport<T> && requires(const T& t) {
  { t.lost_peer_policy() } -> std::convertible_to<LostPeerPolicy>;
  { t.lost_peers() } -> std::convertible_to<std::span<const LostPeer>>;
};

/// A loss-aware transport whose endpoints can come back after an injected failure (NodeRejoin):
/// `rejoin(round)` is the restarted node's handshake with its neighbours at exchange `round`.
template <class T>
concept RejoinTransport = LossAwareTransport<T> && requires(T& t, long round) { t.rejoin(round); };

/// What TransportRef throws when a per-peer call reaches a transport that has no per-peer delivery.
[[noreturn]] inline void throw_not_per_peer(int rank) {
  throw ConfigError("the transport of rank " + std::to_string(rank) +
                    " does not deliver per peer (no post_to/collect_from): a time-varying schedule needs a "
                    "PeerTransport (SimulatedNetwork, ThreadNetwork, MpiTransport)");
}

/// A non-owning, type-erased reference to a Transport. The optimizer calls its transport twice a
/// round, so one indirect call there costs nothing, and the optimizer's type stays independent
/// of the network it runs on (the same program picks sim, threads or MPI at run time).
class TransportRef {
 public:
  template <Transport T>
    requires(!std::same_as<std::remove_cv_t<T>, TransportRef>)  // copying a ref must not wrap it
  TransportRef(T& transport) noexcept  // NOLINT(google-explicit-constructor): a reference wrapper
      : object_(&transport),
        rank_([](void* o) { return static_cast<int>(static_cast<T*>(o)->rank()); }),
        degree_([](void* o) { return static_cast<int>(static_cast<T*>(o)->degree()); }),
        post_([](void* o, long r, std::span<const std::byte> m) { static_cast<T*>(o)->post(r, m); }),
        collect_([](void* o, long r, std::vector<std::span<const std::byte>>& in) {
          static_cast<T*>(o)->collect(r, in);
        }),
        advance_([](void* o, double seconds) {
          if constexpr (VirtualClockTransport<T>) static_cast<T*>(o)->advance(seconds);
          else (void)o, (void)seconds;
        }),
        neighbor_ranks_([](void* o) -> std::optional<std::vector<int>> {
          if constexpr (NeighborListTransport<T>) return std::vector<int>(static_cast<T*>(o)->neighbor_ranks());
          else return (void)o, std::nullopt;
        }),
        post_to_([](void* o, long r, int peer, std::span<const std::byte> m) {
          if constexpr (PeerTransport<T>) static_cast<T*>(o)->post_to(r, peer, m);
          else (void)r, (void)peer, (void)m, throw_not_per_peer(static_cast<int>(static_cast<T*>(o)->rank()));
        }),
        collect_from_([](void* o, long r, int peer) -> std::span<const std::byte> {
          if constexpr (PeerTransport<T>) return static_cast<T*>(o)->collect_from(r, peer);
          else (void)r, (void)peer, throw_not_per_peer(static_cast<int>(static_cast<T*>(o)->rank()));
        }),
        lost_peers_([](void* o) -> std::span<const LostPeer> {
          if constexpr (LossAwareTransport<T>) return static_cast<T*>(o)->lost_peers();
          else return (void)o, std::span<const LostPeer>{};
        }),
        rejoin_([](void* o, long r) {
          if constexpr (RejoinTransport<T>) static_cast<T*>(o)->rejoin(r);
          else
            (void)r, throw ConfigError("the transport of rank " + std::to_string(static_cast<T*>(o)->rank()) +
                                       " cannot bring a node back (no rejoin(round)): use SimulatedNetwork or ThreadNetwork");
        }),
        delivers_per_peer_(PeerTransport<T>),
        drops_lost_peers_([&transport] {
          if constexpr (LossAwareTransport<T>) return transport.lost_peer_policy() == LostPeerPolicy::drop;
          else return (void)transport, false;
        }()) {}

  [[nodiscard]] int rank() const { return rank_(object_); }
  [[nodiscard]] int degree() const { return degree_(object_); }
  void post(long round, std::span<const std::byte> message) const { post_(object_, round, message); }
  void collect(long round, std::vector<std::span<const std::byte>>& inbox) const {
    collect_(object_, round, inbox);
  }
  /// Adds `seconds` of computation to a virtual clock; a no-op on real-time transports.
  void advance(double seconds) const { advance_(object_, seconds); }
  /// The neighbours' ranks in inbox order, or nullopt for a transport that cannot say
  /// (one that is not a NeighborListTransport).
  [[nodiscard]] std::optional<std::vector<int>> neighbor_ranks() const { return neighbor_ranks_(object_); }
  /// Whether post_to / collect_from reach the transport (it is a PeerTransport); when false they
  /// throw ConfigError.
  [[nodiscard]] bool delivers_per_peer() const noexcept { return delivers_per_peer_; }
  void post_to(long round, int peer, std::span<const std::byte> message) const {
    post_to_(object_, round, peer, message);
  }
  [[nodiscard]] std::span<const std::byte> collect_from(long round, int peer) const {
    return collect_from_(object_, round, peer);
  }
  /// Whether the transport drops lost neighbours (LostPeerPolicy::drop) instead of failing; read
  /// when the reference is made (set the policy before building the optimizer).
  [[nodiscard]] bool drops_lost_peers() const noexcept { return drops_lost_peers_; }
  /// The lost nodes the transport knows of (empty for a transport that is not LossAwareTransport).
  [[nodiscard]] std::span<const LostPeer> lost_peers() const { return lost_peers_(object_); }
  /// A rejoining node's handshake at exchange `round` (RejoinTransport); ConfigError on others.
  void rejoin(long round) const { rejoin_(object_, round); }

 private:
  void* object_;
  int (*rank_)(void*);
  int (*degree_)(void*);
  void (*post_)(void*, long, std::span<const std::byte>);
  void (*collect_)(void*, long, std::vector<std::span<const std::byte>>&);
  void (*advance_)(void*, double);
  std::optional<std::vector<int>> (*neighbor_ranks_)(void*);
  void (*post_to_)(void*, long, int, std::span<const std::byte>);
  std::span<const std::byte> (*collect_from_)(void*, long, int);
  std::span<const LostPeer> (*lost_peers_)(void*);
  void (*rejoin_)(void*, long);
  bool delivers_per_peer_;
  bool drops_lost_peers_;
};

}  // namespace decopt
