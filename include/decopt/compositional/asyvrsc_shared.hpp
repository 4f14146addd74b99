// decopt/compositional/asyvrsc_shared.hpp — AsyVRSC on shared memory: several threads run the
// VRSC inner loop lock-free on one x (AsyVRSC-Shared of Shen, Xu, Liu, Guo & Ling, "Asynchronous
// Stochastic Composition Optimization with Variance Reduction", arXiv 1811.06396, 2018; the
// lock-free scheme is Hogwild!, Recht et al. 2011, as analysed for SVRG by Reddi et al. 2015).
//
// Per epoch:
//   1. snapshot, in parallel: each thread sums G_j(x̃), ∂G_j(x̃) over its slice of j; a barrier
//      completion reduces the slices and forms G̃, ∂G̃, ∇f(x̃) (and records the history);
//   2. inner phase: each thread performs its share of inner_steps with no lock:
//        x̂ = relaxed atomic loads of x, coordinate by coordinate (an inconsistent read: other
//            threads' updates may be partially visible — the "inconsistent read" model of AsyVRSC);
//        v = estimator at x̂;
//        x_k += −η v_k  by a relaxed atomic fetch_add, for every coordinate k (the default), or —
//            with coordinates_per_step = b — for the b consecutive coordinates (cyclically)
//            from one drawn uniformly: the coordinate-update model of the lock-free analyses with
//            inconsistent reads (Liu & Wright, "Asynchronous Stochastic Coordinate Descent:
//            Parallelism and Convergence Properties", SIAM J. Optim. 2015; Lian, Huang, Li & Liu,
//            "Asynchronous Parallel Stochastic Gradient for Nonconvex Optimization", NeurIPS 2015),
//            whose linear speed-up holds while the delay is bounded by a power of the dimension —
//            the condition AsyVRSC-Shared's abstract states. No update is lost either way;
//   3. a barrier, whose completion copies x into x̃ for the next snapshot.
//
// Which coordinates the paper's inner step writes could not be read here (its pseudo-code was not
// retrievable from this project's sources; the abstract's speed-up condition points to coordinate
// updates), so both are offered: b = 1 is the analysed model, b = 0 the Hogwild!-style full write,
// which makes d times the progress per estimate (README, "Reproducing the papers", compares them).
//
// x is the user's buffer, accessed through std::atomic_ref<double> during the inner phase and
// plainly between barriers (which order all accesses). With threads = 1 the run is deterministic
// and reproduces VRSC with the same options exactly (same sample stream, same arithmetic).
// Starting the pool is exception-safe (decopt/core/threads.hpp): a thread that cannot be created
// is an Error naming how many had started, never a barrier waiting forever for it.
#pragma once

#include "decopt/compositional/problem.hpp"
#include "decopt/compositional/vrsc_estimator.hpp"
#include "decopt/core/diagnostics.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/threads.hpp"

#include <atomic>
#include <barrier>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

DECOPT_AVX512_QUIET_BEGIN
namespace decopt::compositional {

/// Options of AsyVRSCShared: the VRSC options plus the thread count.
struct AsyVrscSharedOptions : VrscOptions {
  int threads = 2;  ///< threads running inner steps on the shared x (≥ 1)
  /// Coordinates an inner step writes: 0 = all d (default); b in [1, d] = b consecutive ones
  /// (cyclically) from a uniformly drawn start, from a stream of their own (seed, epoch, thread),
  /// so the sample stream is the same as with b = 0.
  Eigen::Index coordinates_per_step = 0;
};

/// Lock-free shared-memory AsyVRSC. Options are validated by the constructor.
class AsyVRSCShared {
 public:
  /// @param start_thread starts each of the threads − 1 extra threads (default: a std::jthread)
  /// @throws ConfigError for options out of range (named)
  explicit AsyVRSCShared(const AsyVrscSharedOptions& options = {}, ThreadStarter start_thread = {})
      : options_(options), start_thread_(std::move(start_thread)) {
    detail::validate(options_);
    decopt::detail::require(options_.threads >= 1,
                            "asyvrsc-shared: threads must be >= 1, got " + std::to_string(options_.threads));
    decopt::detail::require(options_.coordinates_per_step >= 0,
                            "asyvrsc-shared: coordinates_per_step must be >= 0 (0 = all), got " +
                                std::to_string(options_.coordinates_per_step));
  }

  /// Minimises `problem` from x, updating x in place with `threads` threads (the caller's thread
  /// is one of them). Same contract as VRSC::optimize; the problem's const members are called
  /// concurrently.
  /// @throws Error naming how many threads had started when one cannot be started (e.g. under a
  ///         memory limit); the started ones are stopped and joined first, so nothing hangs.
  template <class P>
  CompositionalResult optimize(const P& problem, VectorRef x,
                               std::optional<double> optimal_value = std::nullopt) const {
    static_assert(std::atomic_ref<double>::is_always_lock_free,
                  "decopt: AsyVRSCShared needs lock-free atomic doubles.");
    detail::check_compositional_problem<P>();  // one sentence per missing member, and nothing else
    if constexpr (CompositionalProblem<P>) {
      return run(problem, x, optimal_value);
    } else {
      return {};
    }
  }

  [[nodiscard]] const AsyVrscSharedOptions& options() const noexcept { return options_; }

 private:
  template <CompositionalProblem P>
  CompositionalResult run(const P& problem, VectorRef x, std::optional<double> optimal_value) const {
    detail::validate_problem(problem, x);
    decopt::detail::require(
        reinterpret_cast<std::uintptr_t>(x.data()) % std::atomic_ref<double>::required_alignment == 0,
        "asyvrsc-shared: x is not aligned for atomic access");

    const int threads = options_.threads;
    const Eigen::Index d = problem.dimension();
    const Eigen::Index p = problem.inner_dimension();
    const Eigen::Index m = problem.inner_count();
    double* const shared_x = x.data();
    const Eigen::Index block = options_.coordinates_per_step == 0 ? d : options_.coordinates_per_step;
    decopt::detail::require(block <= d, "asyvrsc-shared: coordinates_per_step must be <= the dimension " +
                                            std::to_string(d) + ", got " + std::to_string(block));

    VrscEstimator<P> estimator(problem);
    std::vector<typename VrscEstimator<P>::Workspace> workspaces;
    std::vector<Vector> partial_g(static_cast<std::size_t>(threads), Vector::Zero(p));
    std::vector<Matrix> partial_j(static_cast<std::size_t>(threads), Matrix::Zero(p, d));
    for (int t = 0; t < threads; ++t)
      workspaces.push_back(estimator.make_workspace(options_.batch_a, options_.batch_b));
    detail::EpochMonitor monitor("AsyVRSC-Shared", options_, optimal_value);

    // Shared control state. Written only by barrier completions (which run while every thread
    // waits) or under error_mutex; read by the threads after the barrier.
    int epoch = 0;
    bool stop = false;
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto fail = [&]() noexcept {
      const std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
      failed.store(true);
    };

    estimator.set_point(x);
    auto snapshot_done = [&]() noexcept {
      try {
        if (failed.load()) {
          stop = true;
          return;
        }
        for (int t = 1; t < threads; ++t) {
          partial_g[0] += partial_g[static_cast<std::size_t>(t)];
          partial_j[0] += partial_j[static_cast<std::size_t>(t)];
        }
        estimator.finish_snapshot(partial_g[0], partial_j[0], workspaces[0]);
        stop = monitor.observe(epoch, problem.objective(estimator.snapshot_point()),
                               estimator.snapshot_gradient().norm());
      } catch (...) {
        fail();
        stop = true;
      }
    };
    auto inner_done = [&]() noexcept {
      monitor.result().updates += static_cast<std::uint64_t>(options_.inner_steps);
      ++epoch;
      try {
        estimator.set_point(x);
      } catch (...) {
        fail();
      }
    };
    std::barrier snapshot_barrier(threads, snapshot_done);
    std::barrier inner_barrier(threads, inner_done);

    auto body = [&](int t) {
      const auto slice = [&](Eigen::Index total, int k) { return total * k / threads; };
      auto& w = workspaces[static_cast<std::size_t>(t)];
      for (;;) {
        try {
          if (!failed.load(std::memory_order_relaxed)) {
            partial_g[static_cast<std::size_t>(t)].setZero();
            partial_j[static_cast<std::size_t>(t)].setZero();
            estimator.accumulate_inner(slice(m, t), slice(m, t + 1), partial_g[static_cast<std::size_t>(t)],
                                       partial_j[static_cast<std::size_t>(t)], w);
          }
        } catch (...) {
          fail();
        }
        snapshot_barrier.arrive_and_wait();
        if (stop) return;
        try {
          if (!failed.load(std::memory_order_relaxed)) {
            Rng rng = VrscEstimator<P>::sample_stream(options_.seed, epoch, t);
            Rng coordinate_rng = coordinate_stream(epoch, t);
            const Eigen::Index steps = slice(options_.inner_steps, t + 1) - slice(options_.inner_steps, t);
            for (Eigen::Index s = 0; s < steps; ++s) {
              for (Eigen::Index k = 0; k < d; ++k)
                w.x_local(k) = std::atomic_ref<double>(shared_x[k]).load(std::memory_order_relaxed);
              estimator.sample_and_estimate(w.x_local, rng, w, w.v);
              const Eigen::Index first =
                  block == d ? 0 : static_cast<Eigen::Index>(coordinate_rng.below(static_cast<std::uint64_t>(d)));
              for (Eigen::Index j = 0; j < block; ++j) {
                const Eigen::Index k = first + j < d ? first + j : first + j - d;
                std::atomic_ref<double>(shared_x[k])
                    .fetch_add(-(options_.step_size * w.v(k)), std::memory_order_relaxed);
              }
            }
          }
        } catch (...) {
          fail();
        }
        inner_barrier.arrive_and_wait();
      }
    };

    // If a thread cannot be started, the started ones must not wait at the barrier for it: drop
    // the places of the caller and of every thread that never started, so the phase completes
    // when the started ones arrive, and its completion (seeing `failed`) stops them.
    auto release = [&](std::size_t started) {
      failed.store(true);
      for (auto place = started; place < static_cast<std::size_t>(threads); ++place)
        snapshot_barrier.arrive_and_drop();
    };
    {
      const std::string who = "asyvrsc-shared (" + std::to_string(threads) + " threads, the caller's included)";
      const auto pool = decopt::detail::start_threads(who, 1, threads - 1, body, release, start_thread_);
      body(0);
    }  // joins
    if (error) std::rethrow_exception(error);
    return monitor.result();
  }

  /// The stream that draws each inner step's first coordinate (coordinates_per_step > 0).
  [[nodiscard]] Rng coordinate_stream(int epoch, int thread) const noexcept {
    return Rng::derive(options_.seed, {0x636f6f72ULL /* "coor" */, static_cast<std::uint64_t>(epoch),
                                       static_cast<std::uint64_t>(thread)});
  }

  AsyVrscSharedOptions options_;
  ThreadStarter start_thread_;
};

}  // namespace decopt::compositional
DECOPT_AVX512_QUIET_END
