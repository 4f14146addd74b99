// decopt/transport/queued_receive.hpp — receiving what has arrived, without waiting for a round:
// the transport side of asynchronous gossip (decopt/optimizer/async_gossip.hpp).
//
// post_queued(round, msg) gives every neighbour its own copy of msg, filed in a FIFO per
// (receiver, sender) in the order posted — so in round order, since a node posts its rounds in
// order. try_receive(slot) takes the next message of neighbour `slot` (its index in the
// receiver's neighbour list) if it has arrived, and never waits: on ThreadNetwork "arrived" is
// real time (under a LinkModel, the modelled arrival has passed); on SimulatedNetwork it is the
// receiver's virtual clock. ThreadNetwork also has receive(slot), which waits for that message
// for at most the network's timeout; SimulatedNetwork instead says when the next one arrives
// (next_arrival), so an event-driven driver can move the clock to it. queued(slot) counts the
// messages from `slot` not yet taken (arrived or in transit): the async step's queue length.
//
// These calls are additive: post/collect and post_to/collect_from are untouched. A run uses either
// the queued calls or the round calls on one network, not both (they share ThreadNetwork's FIFOs).
#pragma once

#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "decopt/core/error.hpp"

namespace decopt {

/// A message taken from a neighbour's queue: the round its sender posted it in, and its bytes,
/// valid until the next try_receive / receive from the same neighbour.
struct ArrivedMessage {
  long round = -1;
  std::span<const std::byte> bytes;
};

/// A transport whose messages queue per neighbour and can be taken as they arrive.
template <class T>
concept QueuedTransport = requires(T& t, const T& ct, long round, std::span<const std::byte> message, std::size_t slot) {
  { ct.rank() } -> std::convertible_to<int>;
  { ct.degree() } -> std::convertible_to<int>;
  { ct.neighbor_ranks() } -> std::convertible_to<std::vector<int>>;
  t.post_queued(round, message);
  { t.try_receive(slot) } -> std::same_as<std::optional<ArrivedMessage>>;
  { ct.queued(slot) } -> std::convertible_to<std::size_t>;
};

/// A QueuedTransport that can also wait for a neighbour's next message (real-time networks).
template <class T>
concept BlockingQueuedTransport = QueuedTransport<T> && requires(T& t, std::size_t slot) {
  { t.receive(slot) } -> std::same_as<ArrivedMessage>;
};

/// A non-owning, type-erased reference to a QueuedTransport (the async node's network, chosen at
/// run time). receive() on a transport that cannot wait throws ConfigError.
class QueuedTransportRef {
 public:
  template <QueuedTransport T>
    requires(!std::same_as<std::remove_cv_t<T>, QueuedTransportRef>)
  QueuedTransportRef(T& t) noexcept  // NOLINT(google-explicit-constructor): a reference wrapper
      : object_(&t),
        rank_([](const void* o) { return static_cast<int>(static_cast<const T*>(o)->rank()); }),
        degree_([](const void* o) { return static_cast<int>(static_cast<const T*>(o)->degree()); }),
        neighbor_ranks_([](const void* o) { return std::vector<int>(static_cast<const T*>(o)->neighbor_ranks()); }),
        post_([](void* o, long r, std::span<const std::byte> m) { static_cast<T*>(o)->post_queued(r, m); }),
        try_receive_([](void* o, std::size_t k) { return static_cast<T*>(o)->try_receive(k); }),
        receive_([](void* o, std::size_t k) -> ArrivedMessage {
          if constexpr (BlockingQueuedTransport<T>) {
            return static_cast<T*>(o)->receive(k);
          } else {
            (void)k;
            throw ConfigError("the transport of rank " + std::to_string(static_cast<T*>(o)->rank()) +
                              " cannot wait for a message (SimulatedNetwork): drive it with an event-driven "
                              "simulation (AsyncSimulation)");
          }
        }),
        queued_([](const void* o, std::size_t k) { return static_cast<std::size_t>(static_cast<const T*>(o)->queued(k)); }),
        can_wait_(BlockingQueuedTransport<T>) {}

  [[nodiscard]] int rank() const { return rank_(object_); }
  [[nodiscard]] int degree() const { return degree_(object_); }
  [[nodiscard]] std::vector<int> neighbor_ranks() const { return neighbor_ranks_(object_); }
  void post_queued(long round, std::span<const std::byte> message) const { post_(object_, round, message); }
  [[nodiscard]] std::optional<ArrivedMessage> try_receive(std::size_t slot) const { return try_receive_(object_, slot); }
  [[nodiscard]] ArrivedMessage receive(std::size_t slot) const { return receive_(object_, slot); }
  [[nodiscard]] std::size_t queued(std::size_t slot) const { return queued_(object_, slot); }
  /// Whether receive() can wait (a BlockingQueuedTransport).
  [[nodiscard]] bool can_wait() const noexcept { return can_wait_; }

 private:
  void* object_;
  int (*rank_)(const void*);
  int (*degree_)(const void*);
  std::vector<int> (*neighbor_ranks_)(const void*);
  void (*post_)(void*, long, std::span<const std::byte>);
  std::optional<ArrivedMessage> (*try_receive_)(void*, std::size_t);
  ArrivedMessage (*receive_)(void*, std::size_t);
  std::size_t (*queued_)(const void*, std::size_t);
  bool can_wait_;
};

}  // namespace decopt
