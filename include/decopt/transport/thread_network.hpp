// decopt/transport/thread_network.hpp — one thread per node on one machine, a channel per edge.
//
// post() hands one shared, immutable copy of the message to every neighbour's channel and returns;
// collect() blocks on a condition variable (no busy waiting) until the message of that round from
// every neighbour has arrived — and, under a LinkModel, until its modelled arrival time has passed,
// so latency and bandwidth become real delay. Every wait of a collect(), the modelled transfer
// included, ends by `timeout` after it began: a neighbour that never sends, or a link model slower
// than the timeout, is a TransportError naming the rank, the neighbour and the round. post_to /
// collect_from (PeerTransport) use the same channels one neighbour at a time. abort()
// wakes every waiter; reset() makes an aborted network usable for a new run. post_queued /
// try_receive / receive / queued (decopt/transport/queued_receive.hpp) take each neighbour's
// messages as they arrive, for asynchronous gossip.
//
// Lost peers (lost_peers.hpp): under LostPeerPolicy::drop a neighbour that times out, or whose
// thread ended by an injected failure (NodeCrashed: run() ends that thread quietly, as a crashed
// process, and wakes its neighbours at once instead of after the timeout), leaves an empty span in
// its slot and is in lost_peers() from then on; nothing more is delivered to it. A node dropped
// after the timeout is evicted: if it wakes up, its next post throws NodeCrashed and run() ends its
// thread, instead of letting it run on alone. A node with an injected rejoin (NodeRejoin) comes
// back instead: its thread catches NodeCrashed and calls the optimizer's rejoin(), whose pull from
// a neighbour waits, like any collect, at most the timeout (call it within that time of the
// rejoin's boundary); its neighbours see it at its rejoin round R2 and deliver to it again from
// exchange R2 + kRepairDelay (lost_peers.hpp). Evicted (hung) nodes do not rejoin.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/core/threads.hpp"
#include "decopt/topology/topology.hpp"
#include "decopt/transport/link_model.hpp"
#include "decopt/transport/lost_peers.hpp"
#include "decopt/transport/queued_receive.hpp"
#include "decopt/transport/transport.hpp"

namespace decopt {


/// Thrown to the nodes still waiting when another node failed and the network was aborted.
struct NetworkAborted : TransportError {
  explicit NetworkAborted(const std::string& reason) : TransportError("network aborted: " + reason) {}
};

namespace detail {
/// The latest modelled arrival ThreadNetwork represents, in seconds after its start (~31.7 years).
inline constexpr double kLatestArrivalSeconds = 1e9;

/// `seconds` as a steady_clock duration, clamped to [0, kLatestArrivalSeconds] (NaN to the
/// latest). Arrivals are timed in double seconds; converting one past ~292 years to int64
/// nanoseconds overflows (undefined behaviour, in practice a time in the past: an instant
/// delivery). A queue on a slow link can grow that far even under a valid LinkModel, and any
/// wait ends by the timeout (at most a year) long before the clamp matters.
inline std::chrono::steady_clock::duration saturated_clock_duration(double seconds) noexcept {
  if (std::isnan(seconds) || seconds > kLatestArrivalSeconds) seconds = kLatestArrivalSeconds;
  if (seconds < 0) seconds = 0;
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
}
}  // namespace detail

class ThreadNetwork {
  using Clock = std::chrono::steady_clock;
  struct Delivery {
    long round;
    Clock::time_point arrival;
    std::shared_ptr<const std::vector<std::byte>> bytes;
    std::vector<LostPeer> lost;  // the sender's lost set when it posted (lost_peers.hpp)
  };
  struct Mailbox {  // everything node i receives, one FIFO per neighbour slot
    std::mutex mutex;
    std::condition_variable arrived;
    std::vector<std::deque<Delivery>> from;  // indexed by neighbour slot
  };

 public:
  /// One node's endpoint; satisfies the Transport concept. Use it from that node's thread only.
  class Endpoint {
   public:
    [[nodiscard]] int rank() const noexcept { return rank_; }
    [[nodiscard]] LostPeerPolicy lost_peer_policy() const noexcept { return network_->policy_; }
    /// The nodes this endpoint knows to be lost (lost_peers.hpp), sorted by node.
    [[nodiscard]] std::span<const LostPeer> lost_peers() const noexcept { return lost_.peers(); }
    [[nodiscard]] int degree() const noexcept { return static_cast<int>(slots_.size()); }
    /// The neighbours this endpoint exchanges with, in topology order (the optimizer checks them
    /// against its own topology).
    [[nodiscard]] std::vector<int> neighbor_ranks() const {
      std::vector<int> ranks;
      ranks.reserve(slots_.size());
      for (const Slot& slot : slots_) ranks.push_back(slot.neighbor);
      return ranks;
    }

    void post(long round, std::span<const std::byte> message) {
      check_not_stopped(round);
      auto shared = std::make_shared<const std::vector<std::byte>>(message.begin(), message.end());
      const auto now = Clock::now();
      for (std::size_t k = 0; k < slots_.size(); ++k) deliver(k, round, now, shared);
    }

    /// Sends a copy of `message` to neighbour `peer` only (PeerTransport).
    /// @throws ConfigError when peer is not a neighbour in the network's topology
    void post_to(long round, int peer, std::span<const std::byte> message) {
      check_not_stopped(round);
      deliver(slot_of(peer), round, Clock::now(),
              std::make_shared<const std::vector<std::byte>>(message.begin(), message.end()));
    }

    /// A rejoining node's handshake when it comes back at exchange `round` (NodeRejoin): it learns
    /// which of its neighbours are lost from their connections, and drops the messages of the
    /// rounds it missed (a restarted process starts with an empty inbox).
    /// @throws ConfigError when no rejoin is planned
    void rejoin(long round) {
      detail::require(network_->failures_.back_by(rank_, round),
                      "ThreadNetwork: node " + std::to_string(rank_) + " has no rejoin due by round " + std::to_string(round));
      for (const Slot& slot : slots_) {
        const long stopped = network_->stopped_at_[static_cast<std::size_t>(slot.neighbor)].load();
        if (stopped >= 0) lost_.add(network_->failures_.seen_at(slot.neighbor, stopped, round - kRepairDelay));
      }
      back_from_ = round;
    }

    /// Waits for round `round` from every neighbour, in neighbour order, for at most the network's
    /// timeout in all (the wait for a message's modelled arrival included).
    /// @throws TransportError naming this rank, the neighbour and the round after the timeout, or
    ///         when a neighbour's next message is of another round; NetworkAborted after abort()
    void collect(long round, std::vector<std::span<const std::byte>>& inbox) {
      Mailbox& box = *network_->mailboxes_[static_cast<std::size_t>(rank_)];
      held_.assign(slots_.size(), nullptr);
      inbox.resize(slots_.size());
      const auto deadline = Clock::now() + network_->timeout_;
      std::unique_lock lock(box.mutex);
      for (std::size_t k = 0; k < slots_.size(); ++k) inbox[k] = take(lock, box, k, round, deadline);
    }

    /// Waits for neighbour `peer`'s round-`round` message (PeerTransport), for at most the
    /// network's timeout; the span stays valid until the next collect_from from that peer.
    /// @throws TransportError naming this rank, the peer and the round, as collect()
    [[nodiscard]] std::span<const std::byte> collect_from(long round, int peer) {
      const std::size_t k = slot_of(peer);
      Mailbox& box = *network_->mailboxes_[static_cast<std::size_t>(rank_)];
      held_.resize(slots_.size());
      const auto deadline = Clock::now() + network_->timeout_;
      std::unique_lock lock(box.mutex);
      return take(lock, box, k, round, deadline);
    }

    // ---- queued receive (decopt/transport/queued_receive.hpp: asynchronous gossip) ----

    /// post(): every neighbour's FIFO already queues a copy of each message in the order posted.
    void post_queued(long round, std::span<const std::byte> message) { post(round, message); }

    /// Takes neighbour slot `slot`'s next message if it has arrived (under a LinkModel: its
    /// modelled arrival has passed); never waits. The bytes stay valid until the next take from
    /// that slot. @throws NetworkAborted after abort(); ConfigError for a slot out of range
    [[nodiscard]] std::optional<ArrivedMessage> try_receive(std::size_t slot) {
      Mailbox& box = queued_mailbox(slot);
      std::lock_guard lock(box.mutex);
      if (network_->aborted_.load()) throw NetworkAborted(network_->abort_reason());
      auto& queue = box.from[slot];
      if (queue.empty() || Clock::now() < queue.front().arrival) return std::nullopt;
      return take_front(queue, slot);
    }

    /// Waits for neighbour slot `slot`'s next message, whatever its round, for at most the
    /// network's timeout. @throws TransportError naming this rank and the neighbour after the
    /// timeout; NetworkAborted after abort()
    [[nodiscard]] ArrivedMessage receive(std::size_t slot) {
      Mailbox& box = queued_mailbox(slot);
      const auto deadline = Clock::now() + network_->timeout_;
      std::unique_lock lock(box.mutex);
      auto& queue = box.from[slot];
      for (;;) {
        if (network_->aborted_.load()) throw NetworkAborted(network_->abort_reason());
        const auto now = Clock::now();
        if (!queue.empty() && now >= queue.front().arrival) return take_front(queue, slot);
        if (now >= deadline)
          throw TransportError("node " + std::to_string(rank_) + " timed out after " +
                               std::to_string(std::chrono::duration<double>(network_->timeout_).count()) +
                               " s waiting for the next message from neighbour " + std::to_string(slots_[slot].neighbor));
        box.arrived.wait_until(lock, queue.empty() ? deadline : std::min(queue.front().arrival, deadline));
      }
    }

    /// Messages from neighbour slot `slot` not yet taken (arrived or still in transit).
    [[nodiscard]] std::size_t queued(std::size_t slot) const {
      Mailbox& box = queued_mailbox(slot);
      std::lock_guard lock(box.mutex);
      return box.from[slot].size();
    }

   private:
    friend class ThreadNetwork;
    struct Slot {
      int neighbor;
      int slot_at_neighbor;  // my index in the neighbour's neighbour list
    };
    /// Files `bytes` in neighbour slot k's mailbox, due at the link model's arrival time (nothing
    /// for a neighbour known to be lost).
    void deliver(std::size_t k, long round, Clock::time_point now, std::shared_ptr<const std::vector<std::byte>> bytes) {
      if (const LostPeer* lost = lost_.find(slots_[k].neighbor); lost && !lost->back_by(round)) return;
      const auto arrival = network_->arrival_time(now, links_[k], bytes->size());
      Mailbox& box = *network_->mailboxes_[static_cast<std::size_t>(slots_[k].neighbor)];
      {
        std::lock_guard lock(box.mutex);
        box.from[static_cast<std::size_t>(slots_[k].slot_at_neighbor)].push_back(
            {round, arrival, std::move(bytes), std::vector<LostPeer>(lost_.peers().begin(), lost_.peers().end())});
      }
      box.arrived.notify_all();
    }

    /// Waits (holding `lock` on box) until slot k's next message, of round `round`, has arrived,
    /// then keeps its bytes in held_[k] and returns them; an empty span for a lost neighbour.
    std::span<const std::byte> take(std::unique_lock<std::mutex>& lock, Mailbox& box, std::size_t k, long round,
                                    Clock::time_point deadline) {
      auto& queue = box.from[k];
      const int peer = slots_[k].neighbor;
      if (const LostPeer* known = lost_.find(peer)) {  // its rejoin is seen from its rejoin round on
        lost_.add(network_->failures_.seen_at(peer, known->round, round));
        if (!lost_.find(peer)->back_by(round)) return {};
      }
      const bool drop = network_->policy_ == LostPeerPolicy::drop;
      for (;;) {
        if (network_->aborted_.load()) throw NetworkAborted(network_->abort_reason());
        while (!queue.empty() && queue.front().round < back_from_) queue.pop_front();  // posted before it crashed
        const auto now = Clock::now();
        if (queue.empty() || (queue.front().round > round && network_->stopped(peer, round))) {  // > round: back already
          if (network_->stopped(peer, round)) {
            if (!drop) throw detail::neighbor_stopped(rank_, peer, round);
            lost_.add({peer, round});
            return {};
          }
          if (now >= deadline) {
            if (!drop) throw timed_out(round, k, "");
            return evict(peer, round);
          }
          box.arrived.wait_until(lock, deadline);
          continue;
        }
        if (queue.front().round != round)
          throw TransportError("node " + std::to_string(rank_) + " expected round " + std::to_string(round) +
                               " from neighbour " + std::to_string(slots_[k].neighbor) + " but got round " +
                               std::to_string(queue.front().round));
        const auto arrival = queue.front().arrival;
        if (now >= arrival) break;
        if (now >= deadline && drop) return evict(peer, round);
        if (now >= deadline)
          throw timed_out(round, k, ": its message is still in transit under the link model, due in " +
                                        std::to_string(std::chrono::duration<double>(arrival - now).count()) + " s");
        box.arrived.wait_until(lock, std::min(arrival, deadline));  // the modelled transfer
      }
      held_[k] = std::move(queue.front().bytes);
      lost_.merge(queue.front().lost);
      queue.pop_front();
      return std::span<const std::byte>(*held_[k]);
    }

    /// This node's mailbox, after checking that `slot` is one of its neighbour slots.
    Mailbox& queued_mailbox(std::size_t slot) const {
      detail::require(slot < slots_.size(), "ThreadNetwork: node " + std::to_string(rank_) + " has no neighbour slot " +
                                                std::to_string(slot) + " (degree " + std::to_string(slots_.size()) + ")");
      return *network_->mailboxes_[static_cast<std::size_t>(rank_)];
    }
    /// Pops the front of slot's queue (the caller holds the mailbox lock), keeping its bytes in held_.
    ArrivedMessage take_front(std::deque<Delivery>& queue, std::size_t slot) {
      held_.resize(slots_.size());
      const long round = queue.front().round;
      held_[slot] = std::move(queue.front().bytes);
      queue.pop_front();
      return {round, std::span<const std::byte>(*held_[slot])};
    }
    /// An injected failure due, or this node dropped by a neighbour (it hung past the timeout and
    /// woke up): NodeCrashed, so that it ends instead of running on alone. A crash is recorded at
    /// once (the neighbours' collects wake up), and a node with a rejoin lists itself with it.
    void check_not_stopped(long round) {
      try {
        network_->failures_.check_post(rank_, round);
      } catch (const NodeCrashed&) {
        network_->stop(rank_, round);
        if (network_->failures_.rejoin_round(rank_) >= 0)
          lost_.add({rank_, network_->stopped_at(rank_), network_->failures_.rejoin_round(rank_)});
        throw;
      }
      if (network_->stopped_at_[static_cast<std::size_t>(rank_)].load() >= 0 && !network_->failures_.back_by(rank_, round))
        throw NodeCrashed(rank_, round);
    }
    /// A neighbour that timed out under drop: lost to this node, and to the network (evicted: its
    /// next post ends it), so that a hung node that wakes up does not run on without neighbours.
    std::span<const std::byte> evict(int peer, long round) {
      lost_.add({peer, round});
      long expected = -1;
      network_->stopped_at_[static_cast<std::size_t>(peer)].compare_exchange_strong(expected, round);
      return {};
    }

    /// The index of `peer` among this node's neighbour slots.
    /// @throws ConfigError when peer is not a neighbour in the network's topology
    [[nodiscard]] std::size_t slot_of(int peer) const {
      for (std::size_t k = 0; k < slots_.size(); ++k)
        if (slots_[k].neighbor == peer) return k;
      throw ConfigError("ThreadNetwork: node " + std::to_string(peer) + " is not a neighbour of node " +
                        std::to_string(rank_) + " in " + network_->topology_.name());
    }
    TransportError timed_out(long round, std::size_t slot, const std::string& detail) const {
      return TransportError("node " + std::to_string(rank_) + " timed out after " +
                            std::to_string(std::chrono::duration<double>(network_->timeout_).count()) +
                            " s waiting for round " + std::to_string(round) + " from neighbour " +
                            std::to_string(slots_[slot].neighbor) + detail);
    }

    ThreadNetwork* network_ = nullptr;
    int rank_ = 0;
    detail::LostSet lost_;  // the lost nodes this endpoint knows of (its own thread's only)
    long back_from_ = -1;   // after a rejoin: the exchange it came back at; older messages are stale
    std::vector<Slot> slots_;
    std::vector<LinkClock> links_;  // one per outgoing link
    std::vector<std::shared_ptr<const std::vector<std::byte>>> held_;  // keeps inbox spans alive
  };

  /// The longest timeout accepted (a year): the deadline of a wait must be a representable time.
  static constexpr std::chrono::milliseconds kMaxTimeout = std::chrono::hours(24 * 365);

  /**
   * @param topology the graph; channels follow its edges
   * @param link     latency/bandwidth applied to every link as real delay (validated)
   * @param timeout  how long one collect() waits in all, modelled transfers included, before
   *                 throwing TransportError; in (0, kMaxTimeout]
   * @throws ConfigError for an invalid link model or timeout, or a link model with declared
   *         compute (a virtual-clock notion; this network runs in real time)
   */
  explicit ThreadNetwork(const Topology& topology, LinkModel link = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(60))
      : topology_(topology), link_(link), timeout_(timeout), epoch_(Clock::now()) {
    link_.validate();
    detail::require(link_.declared_compute == nullptr,
                    "ThreadNetwork runs in real time: LinkModel::declared_compute applies to SimulatedNetwork's virtual clock only");
    detail::require(timeout.count() > 0 && timeout <= kMaxTimeout,
                    "ThreadNetwork timeout must be in (0 ms, 365 days], got " + std::to_string(timeout.count()) + " ms");
    const int n = topology_.size();
    mailboxes_.reserve(static_cast<std::size_t>(n));
    stopped_at_ = std::make_unique<std::atomic<long>[]>(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) stopped_at_[static_cast<std::size_t>(i)].store(-1);
    endpoints_.resize(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      mailboxes_.push_back(std::make_unique<Mailbox>());
      mailboxes_.back()->from.resize(topology_.neighbors(i).size());
    }
    for (int i = 0; i < n; ++i) {
      Endpoint& e = endpoints_[static_cast<std::size_t>(i)];
      e.network_ = this;
      e.rank_ = i;
      const auto back_slots = detail::reverse_neighbor_slots(topology_, i);
      const auto neighbors = topology_.neighbors(i);
      for (std::size_t k = 0; k < neighbors.size(); ++k) e.slots_.push_back({neighbors[k].node, back_slots[k]});
      e.links_.resize(e.slots_.size());
    }
  }
  ThreadNetwork(const ThreadNetwork&) = delete;
  ThreadNetwork& operator=(const ThreadNetwork&) = delete;

  [[nodiscard]] int size() const noexcept { return topology_.size(); }
  [[nodiscard]] const Topology& topology() const noexcept { return topology_; }
  [[nodiscard]] const LinkModel& link_model() const noexcept { return link_; }
  [[nodiscard]] Endpoint& endpoint(int rank) {
    detail::require(rank >= 0 && rank < size(), "ThreadNetwork::endpoint: rank " + std::to_string(rank) + " out of range");
    return endpoints_[static_cast<std::size_t>(rank)];
  }

  /// What a collect does about a neighbour that stops answering (lost_peers.hpp); set before run().
  void set_lost_peer_policy(LostPeerPolicy policy) noexcept { policy_ = policy; }
  [[nodiscard]] LostPeerPolicy lost_peer_policy() const noexcept { return policy_; }
  /// Makes `failure.node` post nothing from `failure.round` on: its post throws NodeCrashed and
  /// run() ends its thread quietly. Set before run().
  /// @throws ConfigError for a node out of range or a negative round
  void inject_failure(NodeFailure failure) { failures_.add(failure, size()); }
  /// Brings `rejoin.node` back: seen by its neighbours at `rejoin.round`, a neighbour again from
  /// exchange `rejoin.round` + kRepairDelay (lost_peers.hpp); its thread calls the optimizer's
  /// rejoin() after its NodeCrashed. Inject its failure first; set before run().
  /// @throws ConfigError naming the node when no injected failure stops it, or when the rejoin is
  ///         not after the failure's round
  void inject_rejoin(NodeRejoin rejoin) { failures_.add(rejoin, size()); }
  /// The round `node`'s neighbours see it rejoin (NodeRejoin), or -1.
  [[nodiscard]] long rejoin_round(int node) const { return failures_.rejoin_round(node); }
  /// The round at which `node`'s thread ended by an injected failure, or at which a neighbour
  /// dropped it after the timeout (LostPeerPolicy::drop), or -1 while it runs; it stays set after
  /// a rejoin (rejoin_round() says when it came back).
  [[nodiscard]] long stopped_at(int node) const {
    detail::require(node >= 0 && node < size(), "ThreadNetwork::stopped_at: node " + std::to_string(node) + " out of range");
    return stopped_at_[static_cast<std::size_t>(node)].load();
  }

  /// Wakes every waiting collect() with a TransportError carrying `reason`; every later
  /// collect() throws it too, until reset().
  void abort(const std::string& reason) {
    {
      std::lock_guard lock(reason_mutex_);
      if (!aborted_.load()) abort_reason_ = reason;
      aborted_.store(true);
    }
    for (auto& box : mailboxes_) {
      std::lock_guard lock(box->mutex);
      box->arrived.notify_all();
    }
  }

  /// Whether abort() was called (by run() when a node failed) since construction or reset().
  [[nodiscard]] bool aborted() const noexcept { return aborted_.load(); }

  /**
   * Makes the network as new for another run after an aborted or failed one: clears the abort,
   * drops every message not yet collected (a failed round leaves some behind) and frees every link
   * of its modelled queue. Call it only while no node is posting or collecting — between runs;
   * run() refuses to start on an aborted network until then. The nodes themselves are reloaded
   * from a checkpoint (DecentralizedOptimizer::load_state) to continue.
   */
  void reset() {
    for (auto& box : mailboxes_) {
      std::lock_guard lock(box->mutex);
      for (auto& queue : box->from) queue.clear();
    }
    for (auto& e : endpoints_) {
      e.links_.assign(e.links_.size(), LinkClock{});
      e.held_.clear();
      e.lost_.clear();
      e.back_from_ = -1;
    }
    for (int i = 0; i < size(); ++i) stopped_at_[static_cast<std::size_t>(i)].store(-1);
    std::lock_guard lock(reason_mutex_);
    aborted_.store(false);
    abort_reason_.clear();
  }

  /**
   * Runs body(rank) on one thread per node and joins them. If a node throws, the network is
   * aborted (so no neighbour hangs) and the first exception is rethrown here; call reset() before
   * running again.
   * @param start_thread starts each node's thread (default: a std::jthread)
   * @throws NetworkAborted at once when the network is still aborted from an earlier run; Error
   *         naming how many threads had started when one cannot be started (the started nodes are
   *         aborted and joined first)
   */
  void run(const std::function<void(int rank)>& body, const ThreadStarter& start_thread = {}) {
    if (aborted()) throw NetworkAborted(abort_reason() + " (call reset() before a new run)");
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(size()));
    std::mutex first_mutex;
    std::exception_ptr first_failure;  // in time: the root cause, whatever node it came from
    auto record = [&](int r) {
      errors[static_cast<std::size_t>(r)] = std::current_exception();
      std::lock_guard lock(first_mutex);
      bool is_abort = false;
      try {
        throw;
      } catch (const NetworkAborted&) {
        is_abort = true;
      } catch (...) {
      }
      if (!first_failure && !is_abort) first_failure = std::current_exception();
    };
    auto node = [this, &body, &record](int r) {
      try {
        body(r);
      } catch (const NodeCrashed& crash) {
        stop(r, crash.round);  // an injected failure: the thread ends as a crashed process would
      } catch (const std::exception& e) {
        record(r);
        abort("node " + std::to_string(r) + " failed: " + e.what());
      } catch (...) {
        record(r);
        abort("node " + std::to_string(r) + " failed");
      }
    };
    {
      // A node whose thread cannot be started would leave its neighbours waiting: abort them.
      auto release = [this](std::size_t started) {
        abort("only " + std::to_string(started) + " of " + std::to_string(size()) + " node threads could be started");
      };
      const std::string who = "ThreadNetwork::run (" + std::to_string(size()) + " nodes)";
      const auto threads = detail::start_threads(who, 0, size(), node, release, start_thread);
    }  // joins
    if (first_failure) std::rethrow_exception(first_failure);
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);  // only aborts: rethrow one
  }

 private:
  Clock::time_point arrival_time(Clock::time_point now, LinkClock& link, std::size_t bytes) const {
    if (link_.is_instant()) return now;
    const double t = std::chrono::duration<double>(now - epoch_).count();
    return epoch_ + detail::saturated_clock_duration(link.send(t, bytes, link_));
  }
  std::string abort_reason() const {
    std::lock_guard lock(reason_mutex_);
    return abort_reason_;
  }
  /// Records that node r's thread ended at `round` (unless it was dropped earlier) and wakes its
  /// neighbours' collects.
  void stop(int r, long round) {
    long expected = -1;
    stopped_at_[static_cast<std::size_t>(r)].compare_exchange_strong(expected, round);
    for (const Edge& e : topology_.neighbors(r)) {
      Mailbox& box = *mailboxes_[static_cast<std::size_t>(e.node)];
      std::lock_guard lock(box.mutex);
      box.arrived.notify_all();
    }
  }
  /// Whether `node` has stopped at or before `round` and is not back by then from a rejoin (so its
  /// round-`round` message never comes).
  [[nodiscard]] bool stopped(int node, long round) const {
    const long at = stopped_at_[static_cast<std::size_t>(node)].load();
    return at >= 0 && at <= round && !failures_.back_by(node, round);
  }

  Topology topology_;
  LinkModel link_;
  std::chrono::milliseconds timeout_;
  Clock::time_point epoch_;
  std::vector<std::unique_ptr<Mailbox>> mailboxes_;
  std::vector<Endpoint> endpoints_;
  std::atomic<bool> aborted_{false};
  LostPeerPolicy policy_ = LostPeerPolicy::fail;
  detail::FailurePlan failures_;
  std::unique_ptr<std::atomic<long>[]> stopped_at_;  // per node: the round its thread crashed, or -1
  mutable std::mutex reason_mutex_;
  std::string abort_reason_;
};

}  // namespace decopt
