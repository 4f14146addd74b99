// decopt/compositional/master_worker.hpp — the minimal message channel between the master and the
// workers of AsyVRSCDistributed, and an in-process implementation over std::thread.
//
// The protocol is point-to-point and has two message kinds, so that it maps directly onto any
// transport that can send a tagged buffer from one rank to another (ThreadNetwork, MPI):
//
//   worker w                                     master
//   ────────                                     ──────
//   pull_model(w, m)   ◄── ModelMessage ───────  send_model(w, m)      (first model, and one reply
//   compute v on m.x                                                    per received update)
//   push_update(u)     ─── UpdateMessage ──────► receive_update(u)     (from any worker)
//
// A ModelMessage carries (epoch, version, x) and, only when the worker's epoch changes, the
// estimator snapshot (VrscEstimator::save_snapshot: x̃, G̃, ∂G̃, ∇f(x̃) as doubles). close() ends the
// run: blocked and later pull_model / receive_update calls return false; push_update after close
// is dropped. Every call that can wait yields its core for up to 200 µs (a reply usually comes
// sooner than a sleeping thread wakes), then blocks on a condition variable.
//
// Adapting a transport: an MPI channel is send_model = MPI_Send(to w, tag MODEL) with the header
// (epoch, version, snapshot length) before the doubles, pull_model = MPI_Recv(from 0, tag MODEL),
// push_update = MPI_Send(to 0, tag UPDATE), receive_update = MPI_Recv(MPI_ANY_SOURCE, tag UPDATE),
// and close = a model with an "end" flag sent to every worker. Nothing else is required.
#pragma once

#include "decopt/core/error.hpp"

#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace decopt::compositional {

/// Master → worker: the model to compute the next update on.
struct ModelMessage {
  std::uint64_t epoch = 0;        ///< epoch of the snapshot the model belongs to
  std::uint64_t version = 0;      ///< number of updates the master has applied so far
  std::vector<double> x;          ///< the model
  std::vector<double> snapshot;   ///< the epoch's estimator snapshot; empty when unchanged
};

/// Worker → master: a search direction v computed on model `version` of `epoch`.
struct UpdateMessage {
  int worker = 0;
  std::uint64_t epoch = 0;
  std::uint64_t version = 0;
  std::vector<double> direction;
};

/// The channel AsyVRSCDistributed is written against (see the header comment for semantics).
template <class C>
concept MasterWorkerChannel = requires(C& c, const C& cc, int worker, ModelMessage& model,
                                       const ModelMessage& cmodel, UpdateMessage& update,
                                       const UpdateMessage& cupdate) {
  { cc.workers() } -> std::convertible_to<int>;       // number of workers, ids 0..workers()-1
  c.send_model(worker, cmodel);                        // master: deliver a model to one worker
  { c.receive_update(update) } -> std::same_as<bool>;  // master: next update (blocks); false once closed
  c.push_update(cupdate);                              // worker: send an update to the master
  { c.pull_model(worker, model) } -> std::same_as<bool>;  // worker: next model (blocks); false once closed
  c.close();                                           // either side: end the run, wake everyone
};

/// In-process channel: one update queue (many producers, the master consumes) and one mailbox per
/// worker, each guarded by a mutex and a condition variable.
class InProcessChannel {
 public:
  explicit InProcessChannel(int workers) : mailboxes_(static_cast<std::size_t>(workers > 0 ? workers : 0)) {
    decopt::detail::require(workers >= 1, "master-worker channel: workers must be >= 1, got " +
                                              std::to_string(workers));
  }
  InProcessChannel(const InProcessChannel&) = delete;
  InProcessChannel& operator=(const InProcessChannel&) = delete;

  [[nodiscard]] int workers() const noexcept { return static_cast<int>(mailboxes_.size()); }

  /// Queues a copy of `model` for `worker` (replacing an unread one: only the newest matters, and
  /// a pending snapshot is kept if the newer model carries none).
  void send_model(int worker, const ModelMessage& model) {
    Mailbox& box = mailbox(worker);
    {
      const std::lock_guard lock(mutex_);
      if (closed_) return;
      if (box.model && model.snapshot.empty() && box.model->epoch == model.epoch) {
        box.model->version = model.version;
        box.model->x = model.x;
      } else {
        box.model = model;
      }
    }
    box.ready.notify_one();
  }

  /// Blocks until a model for `worker` arrives (moved into `model`) or the channel closes (false).
  bool pull_model(int worker, ModelMessage& model) {
    Mailbox& box = mailbox(worker);
    std::unique_lock lock(mutex_);
    spin_then_wait(lock, box.ready, [&] { return closed_ || box.model.has_value(); });
    if (closed_) return false;
    model = std::move(*box.model);
    box.model.reset();
    return true;
  }

  void push_update(const UpdateMessage& update) {
    {
      const std::lock_guard lock(mutex_);
      if (closed_) return;
      updates_.push_back(update);
    }
    update_ready_.notify_one();
  }

  /// Blocks until an update arrives (moved into `update`) or the channel closes (false).
  bool receive_update(UpdateMessage& update) {
    std::unique_lock lock(mutex_);
    spin_then_wait(lock, update_ready_, [&] { return closed_ || !updates_.empty(); });
    if (closed_) return false;
    update = std::move(updates_.front());
    updates_.pop_front();
    return true;
  }

  void close() {
    {
      const std::lock_guard lock(mutex_);
      closed_ = true;
    }
    update_ready_.notify_all();
    for (auto& box : mailboxes_) box.ready.notify_all();
  }

  [[nodiscard]] bool closed() const {
    const std::lock_guard lock(mutex_);
    return closed_;
  }

 private:
  /// A reply usually comes within microseconds, far sooner than a sleeping thread wakes: check
  /// `ready` with the lock released and the core yielded for up to `spin`, then block.
  static constexpr std::chrono::microseconds spin{200};
  template <class Ready>
  static void spin_then_wait(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, Ready ready) {
    const auto until = std::chrono::steady_clock::now() + spin;
    while (!ready() && std::chrono::steady_clock::now() < until) {
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
    }
    cv.wait(lock, ready);
  }

  struct Mailbox {
    std::optional<ModelMessage> model;
    std::condition_variable ready;
  };
  Mailbox& mailbox(int worker) {
    decopt::detail::require(worker >= 0 && worker < workers(),
                            "master-worker channel: worker id " + std::to_string(worker) + " out of range");
    return mailboxes_[static_cast<std::size_t>(worker)];
  }

  mutable std::mutex mutex_;
  std::condition_variable update_ready_;
  std::deque<UpdateMessage> updates_;
  std::vector<Mailbox> mailboxes_;
  bool closed_ = false;
};

static_assert(MasterWorkerChannel<InProcessChannel>);

}  // namespace decopt::compositional
