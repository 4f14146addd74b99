// decopt/compositional/asyvrsc_distributed.hpp — AsyVRSC with a master and workers (AsyVRSC-
// Distributed of Shen, Xu, Liu, Guo & Ling, "Asynchronous Stochastic Composition Optimization
// with Variance Reduction", arXiv 1811.06396, 2018; the parameter-server scheme of asynchronous
// SVRG, Reddi et al. 2015).
//
// The master owns x (the user's buffer). Per epoch it computes the snapshot (x̃ = x, G̃, ∂G̃,
// ∇f(x̃)) and ships it with the model to each worker once. Then, until inner_steps updates have
// been applied:
//
//   worker w:  v = estimator at the x it last pulled (version k);  push (epoch, k, v);  pull
//   master:    on an update of version k at current version t:
//                if it belongs to an older epoch, or t − k > max_staleness (τ): drop it;
//                else x −= η v, t += 1;
//              reply to w with the current model (and the new snapshot if the epoch changed).
//
// So every applied update has staleness t − k ≤ τ (bounded staleness), and each worker has one
// update in flight. Workers compute on a model that may lack the other workers' latest updates,
// which is the delay the AsyVRSC analysis allows for. With one worker the run is deterministic
// and reproduces VRSC exactly.
//
// The algorithm is written against the MasterWorkerChannel concept (master_worker.hpp):
// run_master and run_worker take any channel, so a ThreadNetwork or MPI channel runs them in
// separate threads or processes; optimize() wires them with an InProcessChannel and std::threads.
// The snapshot is computed by the master alone (workers wait), which keeps the channel to two
// message kinds at the price of a serial full pass per epoch.
#pragma once

#include "decopt/compositional/master_worker.hpp"
#include "decopt/compositional/problem.hpp"
#include "decopt/compositional/vrsc_estimator.hpp"
#include "decopt/core/diagnostics.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/threads.hpp"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

DECOPT_AVX512_QUIET_BEGIN
namespace decopt::compositional {

/// Options of AsyVRSCDistributed: the VRSC options plus the worker count and the staleness bound.
struct AsyVrscDistributedOptions : VrscOptions {
  int workers = 2;        ///< worker threads of optimize() (≥ 1); run_master uses channel.workers()
  int max_staleness = 8;  ///< τ ≥ 0: updates computed on a model more than τ versions old are dropped
};

/// Master–worker AsyVRSC with bounded staleness. Options are validated by the constructor.
class AsyVRSCDistributed {
 public:
  /// @param start_thread starts each worker thread of optimize() (default: a std::jthread)
  /// @throws ConfigError for options out of range (named)
  explicit AsyVRSCDistributed(const AsyVrscDistributedOptions& options = {}, ThreadStarter start_thread = {})
      : options_(options), start_thread_(std::move(start_thread)) {
    detail::validate(options_);
    decopt::detail::require(options_.workers >= 1, "asyvrsc-distributed: workers must be >= 1, got " +
                                                       std::to_string(options_.workers));
    decopt::detail::require(options_.max_staleness >= 0,
                            "asyvrsc-distributed: max_staleness must be >= 0, got " +
                                std::to_string(options_.max_staleness));
  }

  /// Runs master and `workers` worker threads in this process over an InProcessChannel; the
  /// caller's thread is the master. Same contract as VRSC::optimize.
  /// @throws Error naming how many workers had started when one cannot be started; the started
  ///         ones are stopped (the channel is closed) and joined first.
  template <class P>
  CompositionalResult optimize(const P& problem, VectorRef x,
                               std::optional<double> optimal_value = std::nullopt) const {
    detail::check_compositional_problem<P>();  // one sentence per missing member, and nothing else
    if constexpr (CompositionalProblem<P>) {
      return run_in_process(problem, x, optimal_value);
    } else {
      return {};
    }
  }

  /// The master: owns x (updated in place), computes snapshots, applies fresh-enough updates and
  /// answers each with the current model. Closes the channel when it returns or throws. Returns
  /// early (with the history so far) if the channel is closed by someone else.
  template <class P, MasterWorkerChannel C>
  CompositionalResult run_master(const P& problem, VectorRef x, C& channel,
                                 std::optional<double> optimal_value = std::nullopt) const {
    detail::check_compositional_problem<P>();
    if constexpr (CompositionalProblem<P>) {
      return master(problem, x, channel, optimal_value);
    } else {
      channel.close();
      return {};
    }
  }

  /// A worker: pulls models, computes the estimator on each, pushes the direction, until the
  /// channel closes. Uses the sample stream (seed, epoch, worker).
  template <class P, MasterWorkerChannel C>
  void run_worker(const P& problem, C& channel, int worker) const {
    detail::check_compositional_problem<P>();
    if constexpr (CompositionalProblem<P>) worker_loop(problem, channel, worker);
  }

  [[nodiscard]] const AsyVrscDistributedOptions& options() const noexcept { return options_; }

 private:
  template <CompositionalProblem P>
  CompositionalResult run_in_process(const P& problem, VectorRef x, std::optional<double> optimal_value) const {
    detail::validate_problem(problem, x);
    InProcessChannel channel(options_.workers);
    std::exception_ptr worker_error;
    std::exception_ptr master_error;
    std::mutex error_mutex;
    CompositionalResult result;
    auto worker = [&](int w) {
      try {
        run_worker(problem, channel, w);
      } catch (...) {
        {
          const std::lock_guard lock(error_mutex);
          if (!worker_error) worker_error = std::current_exception();
        }
        channel.close();
      }
    };
    {
      // A worker that cannot be started: closing the channel ends the started ones' pull_model.
      const auto pool = decopt::detail::start_threads("asyvrsc-distributed", 0, options_.workers, worker,
                                                      [&](std::size_t) { channel.close(); }, start_thread_);
      try {
        result = run_master(problem, x, channel, optimal_value);
      } catch (...) {
        master_error = std::current_exception();
      }
    }  // run_master closed the channel; the workers have returned and are joined here
    if (worker_error) std::rethrow_exception(worker_error);
    if (master_error) std::rethrow_exception(master_error);
    return result;
  }

  template <CompositionalProblem P, MasterWorkerChannel C>
  CompositionalResult master(const P& problem, VectorRef x, C& channel,
                             std::optional<double> optimal_value) const {
    struct CloseOnExit {
      C& c;
      ~CloseOnExit() { c.close(); }
    } close_on_exit{channel};
    detail::validate_problem(problem, x);
    const int workers = channel.workers();
    decopt::detail::require(workers >= 1, "asyvrsc-distributed: the channel has no workers");
    const Eigen::Index d = problem.dimension();

    VrscEstimator<P> estimator(problem);
    auto w = estimator.make_workspace(options_.batch_a, options_.batch_b);
    detail::EpochMonitor monitor("AsyVRSC-Distributed", options_, optimal_value);
    CompositionalResult& result = monitor.result();

    std::uint64_t epoch = 0;
    std::uint64_t version = 0;
    std::vector<double> snapshot;
    constexpr auto never = std::numeric_limits<std::uint64_t>::max();
    std::vector<std::uint64_t> snapshot_sent(static_cast<std::size_t>(workers), never);
    ModelMessage model;

    auto take_snapshot = [&] {  // true: stop
      estimator.compute_snapshot(x, w);
      const bool stop = monitor.observe(static_cast<int>(epoch), problem.objective(x),
                                        estimator.snapshot_gradient().norm());
      estimator.save_snapshot(snapshot);
      return stop;
    };
    auto reply = [&](int worker) {
      model.epoch = epoch;
      model.version = version;
      model.x.assign(x.data(), x.data() + d);
      auto& sent = snapshot_sent[static_cast<std::size_t>(worker)];
      if (sent != epoch) {
        model.snapshot = snapshot;
        sent = epoch;
      } else {
        model.snapshot.clear();
      }
      channel.send_model(worker, model);
    };

    if (take_snapshot()) return result;
    for (int k = 0; k < workers; ++k) reply(k);
    Eigen::Index applied_in_epoch = 0;
    UpdateMessage update;
    while (channel.receive_update(update)) {
      if (update.worker < 0 || update.worker >= workers || update.direction.size() != static_cast<std::size_t>(d))
        throw DecodeError("asyvrsc-distributed: malformed update message");
      const std::uint64_t staleness = version - update.version;
      if (update.epoch != epoch || update.version > version ||
          staleness > static_cast<std::uint64_t>(options_.max_staleness)) {
        ++result.dropped_updates;
      } else {
        x -= options_.step_size * Eigen::Map<const Vector>(update.direction.data(), d);
        ++version;
        ++applied_in_epoch;
        ++result.updates;
        result.max_staleness = std::max(result.max_staleness, staleness);
        if (applied_in_epoch == options_.inner_steps) {
          ++epoch;
          applied_in_epoch = 0;
          if (take_snapshot()) break;
        }
      }
      reply(update.worker);
    }
    return result;
  }

  template <CompositionalProblem P, MasterWorkerChannel C>
  void worker_loop(const P& problem, C& channel, int worker) const {
    const Eigen::Index d = problem.dimension();
    VrscEstimator<P> estimator(problem);
    auto w = estimator.make_workspace(options_.batch_a, options_.batch_b);
    ModelMessage model;
    UpdateMessage update;
    update.worker = worker;
    update.direction.resize(static_cast<std::size_t>(d));
    constexpr auto never = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t snapshot_epoch = never;
    std::uint64_t stream_epoch = never;
    Rng rng(0);
    while (channel.pull_model(worker, model)) {
      if (!model.snapshot.empty()) {
        estimator.load_snapshot(model.snapshot);
        snapshot_epoch = model.epoch;
      }
      decopt::detail::require_decodable(
          snapshot_epoch == model.epoch && model.x.size() == static_cast<std::size_t>(d),
          "asyvrsc-distributed: model message without its epoch's snapshot, or of the wrong size");
      if (stream_epoch != model.epoch) {
        rng = VrscEstimator<P>::sample_stream(options_.seed, static_cast<int>(model.epoch), worker);
        stream_epoch = model.epoch;
      }
      Eigen::Map<Vector> direction(update.direction.data(), d);
      estimator.sample_and_estimate(Eigen::Map<const Vector>(model.x.data(), d), rng, w, direction);
      update.epoch = model.epoch;
      update.version = model.version;
      channel.push_update(update);
    }
  }

  AsyVrscDistributedOptions options_;
  ThreadStarter start_thread_;
};

}  // namespace decopt::compositional
DECOPT_AVX512_QUIET_END
