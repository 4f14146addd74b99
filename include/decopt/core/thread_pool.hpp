// decopt/core/thread_pool.hpp — a small persistent pool that runs one indexed job at a time.
//
// Simulation (decopt/optimizer/simulation.hpp) runs each phase of a lockstep round (every node's
// begin_round, then every node's finish_round) as one job over the node indices. The pool is the
// caller's thread plus T − 1 workers that live as long as the pool; between jobs the workers sleep
// in a std::barrier (a futex wait after a short spin, never a busy loop), so an idle pool costs
// nothing. One barrier wakes them for a job and the same barrier, arrived at again, tells the
// caller that every index is done; the barrier orders the caller's writes before the job and the
// job's writes before the caller returns, so the job needs no locks of its own.
//
// Indices are claimed in increasing order from one atomic counter, so a thread the OS delays (the
// machine may be shared) does not hold back the indices the others can take. An index whose job
// throws is recorded and no index is claimed after it; the pool reports the lowest failing index.
// Every index below a claimed one was claimed before it, so that is the index at which a serial
// loop would have stopped, whatever the thread count.
#pragma once

#include <atomic>
#include <barrier>
#include <cstddef>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "decopt/core/error.hpp"

namespace decopt::detail {

class IndexPool {
 public:
  /// The exception thrown by the lowest index whose job threw.
  struct Failure {
    std::size_t index = 0;
    std::exception_ptr error;
  };

  /**
   * @param threads  threads that run a job, the caller's included (≥ 1). A worker the OS refuses
   *                 to start is left out: the pool runs with those that started (threads() says
   *                 how many), rather than waiting for one that never comes.
   * @throws ConfigError when threads < 1
   */
  explicit IndexPool(int threads) : sync_(validated(threads)) {
    workers_.reserve(static_cast<std::size_t>(threads - 1));
    for (int k = 1; k < threads; ++k) {
      try {
        workers_.emplace_back([this] { work(); });
      } catch (const std::system_error&) {
        for (int missing = k; missing < threads; ++missing) sync_.arrive_and_drop();
        break;
      }
    }
  }
  IndexPool(const IndexPool&) = delete;  // the workers point back at the pool
  IndexPool& operator=(const IndexPool&) = delete;
  ~IndexPool() {
    if (workers_.empty()) return;
    stopping_ = true;
    sync_.arrive_and_wait();  // wakes the workers, which see stopping_ and return; jthreads join
  }

  /// Threads that run a job: the caller's and the workers that started.
  [[nodiscard]] int threads() const noexcept { return static_cast<int>(workers_.size()) + 1; }

  /**
   * Runs job(i) once for every i in [0, count) on the pool's threads and returns when all are
   * done. With one thread, job(0), job(1), … run in order on the caller's thread. Not reentrant:
   * a job must not run the pool it runs on.
   * @return the lowest index whose job threw, with its exception; nothing when none threw
   */
  template <class Job>
  [[nodiscard]] std::optional<Failure> run(std::size_t count, Job& job) {
    invoke_ = [](void* context, std::size_t i) { (*static_cast<Job*>(context))(i); };
    context_ = &job;
    count_ = count;
    next_.store(0, std::memory_order_relaxed);
    failed_.store(false, std::memory_order_relaxed);
    failure_.reset();
    if (workers_.empty()) {
      drain();
    } else {
      sync_.arrive_and_wait();  // start
      drain();
      sync_.arrive_and_wait();  // every thread has drained
    }
    std::optional<Failure> failure = std::move(failure_);
    failure_.reset();
    return failure;
  }

 private:
  static int validated(int threads) {
    require(threads >= 1, "thread count must be >= 1, got " + std::to_string(threads));
    return threads;
  }

  void work() {
    for (;;) {
      sync_.arrive_and_wait();
      if (stopping_) return;
      drain();
      sync_.arrive_and_wait();
    }
  }

  void drain() noexcept {
    while (!failed_.load(std::memory_order_relaxed)) {
      const std::size_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= count_) return;
      try {
        invoke_(context_, i);
      } catch (...) {
        record(i, std::current_exception());
      }
    }
  }

  void record(std::size_t i, std::exception_ptr error) noexcept {
    std::lock_guard lock(failure_mutex_);
    if (!failure_ || i < failure_->index) failure_ = Failure{i, std::move(error)};
    failed_.store(true, std::memory_order_relaxed);
  }

  // The current job, written by the caller before the starting arrive_and_wait and read by the
  // workers after it (the barrier orders them).
  void (*invoke_)(void*, std::size_t) = nullptr;
  void* context_ = nullptr;
  std::size_t count_ = 0;
  bool stopping_ = false;
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> failed_{false};
  std::mutex failure_mutex_;
  std::optional<Failure> failure_;
  std::barrier<> sync_;
  std::vector<std::jthread> workers_;  // last: joined (in ~jthread) before the members they use die
};

}  // namespace decopt::detail
