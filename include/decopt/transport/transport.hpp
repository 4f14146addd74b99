// decopt/transport/transport.hpp — what the optimizer needs from a network, and a non-owning
// handle to any transport.
//
// A transport is one node's end of the network. Each round the node posts ONE message that every
// neighbour receives (decopt's messages are broadcasts: the same compressed residual goes to all
// neighbours), then collects one message from each neighbour. Posting never waits for the
// neighbours; collecting waits until every neighbour's message of that round has arrived.
//
// Determinism: inbox[k] is the message of topology.neighbors(rank)[k], whatever order the bytes
// arrived in, so the optimizer sums neighbours in a fixed order and every transport gives the same
// bits for the same seed.
#pragma once

#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

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
        }) {}

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

 private:
  void* object_;
  int (*rank_)(void*);
  int (*degree_)(void*);
  void (*post_)(void*, long, std::span<const std::byte>);
  void (*collect_)(void*, long, std::vector<std::span<const std::byte>>&);
  void (*advance_)(void*, double);
  std::optional<std::vector<int>> (*neighbor_ranks_)(void*);
};

}  // namespace decopt
