// decopt/transport/thread_network.hpp — one thread per node on one machine, a channel per edge.
//
// post() hands one shared, immutable copy of the message to every neighbour's channel and returns;
// collect() blocks on a condition variable (no busy waiting) until the message of that round from
// every neighbour has arrived — and, under a LinkModel, until its modelled arrival time has passed,
// so latency and bandwidth become real delay. A neighbour that never sends ends the wait after
// `timeout` with an Error naming the rank, the neighbour and the round; abort() wakes every waiter.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/topology/topology.hpp"
#include "decopt/transport/link_model.hpp"
#include "decopt/transport/transport.hpp"

namespace decopt {

/// A neighbour did not deliver within the timeout, or the network was aborted.
struct TransportError : Error {
  explicit TransportError(const std::string& what) : Error("decopt: transport: " + what) {}
};

/// Thrown to the nodes still waiting when another node failed and the network was aborted.
struct NetworkAborted : TransportError {
  explicit NetworkAborted(const std::string& reason) : TransportError("network aborted: " + reason) {}
};

class ThreadNetwork {
  using Clock = std::chrono::steady_clock;
  struct Delivery {
    long round;
    Clock::time_point arrival;
    std::shared_ptr<const std::vector<std::byte>> bytes;
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
    [[nodiscard]] int degree() const noexcept { return static_cast<int>(slots_.size()); }

    void post(long round, std::span<const std::byte> message) {
      auto shared = std::make_shared<const std::vector<std::byte>>(message.begin(), message.end());
      const auto now = Clock::now();
      for (std::size_t k = 0; k < slots_.size(); ++k) {
        const auto arrival = network_->arrival_time(now, links_[k], message.size());
        Mailbox& box = *network_->mailboxes_[static_cast<std::size_t>(slots_[k].neighbor)];
        {
          std::lock_guard lock(box.mutex);
          box.from[static_cast<std::size_t>(slots_[k].slot_at_neighbor)].push_back({round, arrival, shared});
        }
        box.arrived.notify_all();
      }
    }

    void collect(long round, std::vector<std::span<const std::byte>>& inbox) {
      Mailbox& box = *network_->mailboxes_[static_cast<std::size_t>(rank_)];
      held_.assign(slots_.size(), nullptr);
      inbox.resize(slots_.size());
      const auto deadline = Clock::now() + network_->timeout_;
      std::unique_lock lock(box.mutex);
      for (std::size_t k = 0; k < slots_.size(); ++k) {
        auto& queue = box.from[k];
        for (;;) {
          if (network_->aborted_.load()) throw NetworkAborted(network_->abort_reason());
          if (!queue.empty()) {
            if (queue.front().round != round)
              throw TransportError("node " + std::to_string(rank_) + " expected round " + std::to_string(round) +
                                   " from neighbour " + std::to_string(slots_[k].neighbor) + " but got round " +
                                   std::to_string(queue.front().round));
            const auto arrival = queue.front().arrival;
            if (Clock::now() >= arrival) break;
            box.arrived.wait_until(lock, arrival);  // the modelled transfer is still in flight
            continue;
          }
          if (box.arrived.wait_until(lock, deadline) == std::cv_status::timeout && queue.empty())
            throw TransportError("node " + std::to_string(rank_) + " timed out after " +
                                 std::to_string(std::chrono::duration<double>(network_->timeout_).count()) +
                                 " s waiting for round " + std::to_string(round) + " from neighbour " +
                                 std::to_string(slots_[k].neighbor));
        }
        held_[k] = std::move(queue.front().bytes);
        queue.pop_front();
        inbox[k] = std::span<const std::byte>(*held_[k]);
      }
    }

   private:
    friend class ThreadNetwork;
    struct Slot {
      int neighbor;
      int slot_at_neighbor;  // my index in the neighbour's neighbour list
    };
    ThreadNetwork* network_ = nullptr;
    int rank_ = 0;
    std::vector<Slot> slots_;
    std::vector<LinkClock> links_;  // one per outgoing link
    std::vector<std::shared_ptr<const std::vector<std::byte>>> held_;  // keeps inbox spans alive
  };

  /**
   * @param topology the graph; channels follow its edges
   * @param link     latency/bandwidth applied to every link as real delay
   * @param timeout  how long collect() waits for a neighbour before throwing TransportError
   */
  explicit ThreadNetwork(const Topology& topology, LinkModel link = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(60))
      : topology_(topology), link_(link), timeout_(timeout), epoch_(Clock::now()) {
    link_.validate();
    detail::require(timeout.count() > 0, "ThreadNetwork timeout must be > 0 ms");
    const int n = topology_.size();
    mailboxes_.reserve(static_cast<std::size_t>(n));
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

  /// Wakes every waiting collect() with a TransportError carrying `reason`.
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

  /**
   * Runs body(rank) on one thread per node and joins them. If a node throws, the network is
   * aborted (so no neighbour hangs) and the first exception is rethrown here.
   */
  void run(const std::function<void(int rank)>& body) {
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
    {
      std::vector<std::jthread> threads;
      threads.reserve(static_cast<std::size_t>(size()));
      for (int r = 0; r < size(); ++r)
        threads.emplace_back([this, r, &body, &record] {
          try {
            body(r);
          } catch (const std::exception& e) {
            record(r);
            abort("node " + std::to_string(r) + " failed: " + e.what());
          } catch (...) {
            record(r);
            abort("node " + std::to_string(r) + " failed");
          }
        });
    }
    if (first_failure) std::rethrow_exception(first_failure);
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);  // only aborts: rethrow one
  }

 private:
  Clock::time_point arrival_time(Clock::time_point now, LinkClock& link, std::size_t bytes) const {
    if (link_.is_instant()) return now;
    const double t = std::chrono::duration<double>(now - epoch_).count();
    const double arrival = link.send(t, bytes, link_);
    return epoch_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(arrival));
  }
  std::string abort_reason() {
    std::lock_guard lock(reason_mutex_);
    return abort_reason_;
  }

  Topology topology_;
  LinkModel link_;
  std::chrono::milliseconds timeout_;
  Clock::time_point epoch_;
  std::vector<std::unique_ptr<Mailbox>> mailboxes_;
  std::vector<Endpoint> endpoints_;
  std::atomic<bool> aborted_{false};
  std::mutex reason_mutex_;
  std::string abort_reason_;
};

}  // namespace decopt
