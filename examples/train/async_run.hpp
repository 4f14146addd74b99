// train/async_run.hpp — decopt-train's stragglers: --slow-node N --slow-factor F (one node F times
// slower to compute) and --step async (AsyncGossip, decopt/optimizer/async_gossip.hpp) on the
// simulated network (AsyncSimulation's virtual clock) and on threads.
//
// The slow node. On threads, node N's compute is made F times as long by an injected delay: each
// gradient is followed by (F − 1)·(the gradient's measured time + the node's coding and mixing time
// of its last round), also measured — under the run's own load (8 threads on the machine's cores),
// so "F times slower" is relative to what the node really takes there. The synchronous steps sleep
// the delay inside the gradient call (the node's round takes F times as long and every neighbour
// waits for it); --step async gossips through it (the gradient is ready that much later, like a
// slower device beside a network that keeps pace) and sleeps only when the gradient is k rounds
// old. The sleep is the honest model of a slower device here: the delay is idle time, not
// computation, on both steps alike. On sim (with --step-seconds s) the slow node's gradient is
// declared F·s instead (sync), or s plus a delay of (F − 1)·s it gossips through (async).
#pragma once

#include <decopt/decopt.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

#include "train/config.hpp"

namespace decopt::train {

/// Whether the run uses AsyncGossip (--step async).
[[nodiscard]] inline bool asynchronous(const TrainConfig& c) { return c.step == "async"; }

/// AsyncGossip's options from the synchronous ones and --max-staleness.
inline AsyncOptions async_options(const TrainConfig& c, const Options& o) {
  AsyncOptions a;
  a.lr = o.lr;
  a.consensus_step = o.consensus_step;
  a.seed = o.seed;
  a.max_staleness = c.max_staleness;
  a.max_gradient_age = c.max_gradient_age;
  return a;
}

/// Refuses the flags --slow-node and --step async cannot run with.
/// @throws ConfigError naming the flag
inline void check_async(const TrainConfig& c) {
  detail::require(c.slow_reference_ms == 0 || (c.slow_node >= 0 && c.transport == "threads"),
                  "--slow-reference-ms sets --slow-node's round time on --transport threads");
  detail::require(asynchronous(c) || c.max_gradient_age == -1, "--max-gradient-age applies to --step async");
  if (c.slow_node >= 0 || c.slow_factor != 1) {
    detail::require(c.slow_node >= 0 && c.slow_node < c.nodes,
                    c.slow_node < 0 ? std::string("--slow-factor needs --slow-node (the node to slow down)")
                                    : "--slow-node " + std::to_string(c.slow_node) + " is not a node of --nodes " +
                                          std::to_string(c.nodes));
    detail::require(c.transport != "mpi", "--slow-node runs on --transport threads or sim, not mpi");
    detail::require(c.transport != "sim" || c.step_seconds > 0,
                    "--slow-node on --transport sim needs --step-seconds (the declared compute it multiplies)");
  }
  if (!asynchronous(c)) return;
  const std::string with = "--step async";
  detail::require(c.transport == "sim" || c.transport == "threads", with + " runs on --transport sim or threads, not " + c.transport);
  detail::require(c.schedule == "static", with + " gossips over a fixed --topology, not --schedule " + c.schedule);
  detail::require(c.compressor.empty() || c.compressor == "dithered", with + " runs the dithered compressor only, not --compressor " + c.compressor);
  detail::require(c.coder.empty(), with + " runs each algorithm's own coder (malcom: its plain pipeline, vsc; choco and dpsgd: raw); leave --coder out");
  detail::require(c.local_steps == 1, with + " takes one gradient step at a time, not --local-steps " + std::to_string(c.local_steps));
  detail::require(c.momentum == 0, with + " runs plain SGD steps; --momentum does not apply");
  detail::require(c.checkpoint.empty() && c.resume.empty(), with + " has no checkpoints (--checkpoint, --resume)");
  detail::require(c.lambda_warmup == 0 && c.lambda_ramp == 0 && c.support_log.empty(),
                  with + ": malcom runs its plain pipeline with a fixed lambda (no --lambda-warmup, --lambda-ramp, --support-log)");
}

/// One node's injected slowness on threads (header comment): F − 1 times its own measured compute.
class SlowDevice {
 public:
  using Clock = std::chrono::steady_clock;
  /// @param reference_seconds > 0: the others' round time (--slow-reference-ms), which the slow
  ///        round then takes `factor` times; 0: `factor` times the node's own measured compute
  explicit SlowDevice(double factor = 1, double reference_seconds = 0) : factor_(factor), reference_(reference_seconds) {}
  [[nodiscard]] bool slow() const noexcept { return factor_ > 1; }
  /// The delay after a gradient that took `gradient_seconds` to compute: its round (gradient,
  /// coding and mixing) then takes factor × reference, or factor × its own time.
  [[nodiscard]] double delay(double gradient_seconds) const {
    if (reference_ > 0) return std::max(0.0, factor_ * reference_ - gradient_seconds - coding_seconds_);
    return (factor_ - 1) * (gradient_seconds + coding_seconds_);
  }
  /// The node's coding and mixing time of its last round (measured, no delay in it).
  void set_coding(double seconds) { coding_seconds_ = std::max(0.0, seconds); }
  /// Sleeps until `until` (the delay's end), counting the time slept.
  void sleep_until(Clock::time_point until) {
    const auto now = Clock::now();
    if (until <= now) return;
    std::this_thread::sleep_until(until);
    injected_seconds += std::chrono::duration<double>(Clock::now() - now).count();
  }
  /// One round of a synchronous node (DecentralizedOptimizer::step) with this device's delay slept
  /// after each gradient: the node's round takes F times its measured compute.
  template <class Optimizer, class Grad>
  RoundStats step(Optimizer& node, Grad&& grad) {
    double took = 0;
    const double injected_before = injected_seconds;
    const RoundStats stats = node.step([&](std::span<const float> x, std::span<float> g) {
      const auto start = Clock::now();
      const double loss = grad(x, g);
      const double t = std::chrono::duration<double>(Clock::now() - start).count();
      took += t;
      if (slow()) sleep_until(Clock::now() + seconds(delay(t)));
      return loss;
    });
    const double injected = injected_seconds - injected_before;
    busy_seconds += stats.compute_seconds - injected;
    set_coding(stats.compute_seconds - took - injected);
    return stats;
  }
  static Clock::duration seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  double injected_seconds = 0;  ///< time slept in all
  double busy_seconds = 0;      ///< measured compute in all (gradients, coding, mixing), the delay excluded

 private:
  double factor_;
  double reference_;
  double coding_seconds_ = 0;
};

/// One device per node: --slow-node's F times slower, the others as they are.
inline std::vector<SlowDevice> slow_devices(const TrainConfig& c) {
  std::vector<SlowDevice> devices(static_cast<std::size_t>(c.nodes));
  if (c.slow_node >= 0 && c.slow_node < c.nodes)
    devices[static_cast<std::size_t>(c.slow_node)] = SlowDevice(c.slow_factor, c.slow_reference_ms / 1000);
  return devices;
}

/// (busy + injected) per gradient of the slow node over the same of the others: how much slower it
/// really was (F when the calibration holds). NaN without a slow node.
inline double slow_compute_ratio(const TrainConfig& c, const std::vector<SlowDevice>& devices,
                                 const std::vector<long>& gradient_steps) {
  if (c.slow_node < 0 || devices.empty()) return std::nan("");
  double others = 0;
  int count = 0;
  for (std::size_t i = 0; i < devices.size(); ++i)
    if (static_cast<int>(i) != c.slow_node && gradient_steps[i] > 0) {
      others += devices[i].busy_seconds / static_cast<double>(gradient_steps[i]);
      ++count;
    }
  const auto s = static_cast<std::size_t>(c.slow_node);
  if (count == 0 || gradient_steps[s] == 0) return std::nan("");
  const double slow = (devices[s].busy_seconds + devices[s].injected_seconds) / static_cast<double>(gradient_steps[s]);
  return slow / (others / count);
}

/// The sim speed model of --step async: --step-seconds (or 1 ms) per gradient, the slow node's
/// delay (F − 1) times that.
inline AsyncSpeedModel async_speed_model(const TrainConfig& c) {
  const double seconds = c.step_seconds > 0 ? c.step_seconds : 1e-3;
  return AsyncSpeedModel::one_slow(c.nodes, c.slow_node, c.slow_factor, seconds);
}

/// The asynchronous state of one node across decopt-train's segments (evaluations stop the clock):
/// its device, and the delay of its pending gradient still to run.
struct AsyncThreadState {
  SlowDevice device;
  double remaining_delay = 0;
  double loss_sum = 0;
  long loss_count = 0;
};

/**
 * One thread's rounds [node.round(), end) of --step async on ThreadNetwork, with the node's
 * injected delay (header comment); on return the pending gradient's remaining delay is kept so
 * that an evaluation between segments does not count as compute.
 */
template <class Node, class Grad>
void run_async_segment(Node& node, AsyncThreadState& state, long end, Grad&& grad) {
  using Clock = SlowDevice::Clock;
  auto seconds_since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  auto ready_at = Clock::now() + SlowDevice::seconds(state.remaining_delay);
  while (node.round() < end) {
    if (!node.gradient_pending()) {
      const auto start = Clock::now();
      const double loss = node.start_gradient(grad);
      const double took = seconds_since(start);
      state.device.busy_seconds += took;
      if (std::isfinite(loss)) state.loss_sum += loss, ++state.loss_count;
      ready_at = Clock::now() + SlowDevice::seconds(state.device.slow() ? state.device.delay(took) : 0.0);
    }
    if (node.gradient_pending() && (Clock::now() >= ready_at || node.gradient_due())) {
      state.device.sleep_until(ready_at);
      node.apply_gradient();
    }
    const auto start = Clock::now();
    const double waited = node.stats().wait_seconds;
    node.post();
    node.finish();
    const double coding = seconds_since(start) - (node.stats().wait_seconds - waited);
    state.device.busy_seconds += coding;
    state.device.set_coding(coding);
  }
  state.remaining_delay = std::max(0.0, std::chrono::duration<double>(ready_at - Clock::now()).count());
}

/// The largest lag, gradient age and queue over the nodes' stats, and their gradient steps.
template <class Result, class NodeAt>
void record_async_stats(Result& result, int n, NodeAt&& node_at) {
  result.gradient_steps.clear();
  for (int i = 0; i < n; ++i) {
    const AsyncStats& s = node_at(i).stats();
    result.gradient_steps.push_back(s.gradient_steps);
    result.async_bounds.max_neighbor_lag = std::max(result.async_bounds.max_neighbor_lag, s.max_neighbor_lag);
    result.async_bounds.max_gradient_age = std::max(result.async_bounds.max_gradient_age, s.max_gradient_age);
    result.async_bounds.max_queued = std::max(result.async_bounds.max_queued, s.max_queued);
    result.async_bounds.wait_seconds += s.wait_seconds;
  }
}

/**
 * decopt-train's rounds of --step async (run_with's transport branch for AsyncGossip): on sim an
 * AsyncSimulation under async_speed_model, on threads a thread per node with its SlowDevice; stops
 * at next_stop(t) (the evaluations: --step async has no checkpoints) and calls evaluate(t, bytes)
 * there; after the last round the nodes drain their queues and the JSON's neighbor_sum_error is
 * |s − Σ_j w_ij x̂_j| over every node.
 */
template <class Node, class Workers, class Train, class NextStop, class Evaluate, class Progress, class Result>
void run_async_transport(const TrainConfig& c, const Topology& topology, const std::vector<std::span<float>>& spans,
                         const AsyncOptions& options, const typename Node::Compressor& compressor,
                         const typename Node::Prox& prox, Workers& workers, const Train& train, long total_rounds,
                         NextStop&& next_stop, Evaluate&& evaluate, const Progress& progress, Result& result,
                         double& loss_sum, long& loss_count, double& simulated_now) {
  const int n = topology.size();
  auto bytes_of = [n](auto&& node_at) {
    std::uint64_t bytes = 0;
    for (int i = 0; i < n; ++i) bytes += node_at(i).stats().bytes_sent;
    return bytes;
  };
  if (c.transport == "sim") {
    AsyncSimulation<Node> sim(topology, spans, options, async_speed_model(c), c.link_model(), compressor, prox);
    auto node_at = [&](int i) -> Node& { return sim.node(i); };
    std::vector<double> losses(static_cast<std::size_t>(n), 0.0);
    std::vector<long> counts(static_cast<std::size_t>(n), 0);
    auto grad = [&](int i, std::span<const float> x, std::span<float> g) {
      const double loss = workers[static_cast<std::size_t>(i)].gradient(train, x, g);
      losses[static_cast<std::size_t>(i)] += loss;
      ++counts[static_cast<std::size_t>(i)];
      return loss;
    };
    for (long t = 0; t < total_rounds;) {
      const long end = next_stop(t);
      std::fill(losses.begin(), losses.end(), 0.0);
      std::fill(counts.begin(), counts.end(), 0L);
      sim.run(end, grad);
      double mean = 0;
      for (int i = 0; i < n; ++i)
        mean += counts[static_cast<std::size_t>(i)] > 0 ? losses[static_cast<std::size_t>(i)] / counts[static_cast<std::size_t>(i)] / n : 0.0;
      loss_sum += mean * static_cast<double>(end - t);
      loss_count += end - t;
      t = end;
      simulated_now = sim.virtual_time();
      const auto* row = evaluate(t, bytes_of(node_at));
      if (progress) progress(t, total_rounds, row);
    }
    result.simulated_seconds = sim.virtual_time();
    sim.drain();
    result.neighbor_sum_error = sim.neighbor_sum_error();
    record_async_stats(result, n, node_at);
  } else {
    ThreadNetwork network(topology, c.link_model(), std::chrono::milliseconds(static_cast<long>(c.timeout_s * 1000)));
    std::vector<Node> nodes;
    nodes.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) nodes.emplace_back(spans[static_cast<std::size_t>(i)], topology, network.endpoint(i), options, compressor, prox);
    auto node_at = [&](int i) -> Node& { return nodes[static_cast<std::size_t>(i)]; };
    std::vector<AsyncThreadState> states(static_cast<std::size_t>(n));
    const std::vector<SlowDevice> devices = slow_devices(c);
    for (int i = 0; i < n; ++i) states[static_cast<std::size_t>(i)].device = devices[static_cast<std::size_t>(i)];
    for (long t = 0; t < total_rounds;) {
      const long end = next_stop(t);
      network.run([&](int r) {
        auto& state = states[static_cast<std::size_t>(r)];
        state.loss_sum = 0;
        state.loss_count = 0;
        run_async_segment(nodes[static_cast<std::size_t>(r)], state, end, [&](std::span<const float> x, std::span<float> g) {
          return workers[static_cast<std::size_t>(r)].gradient(train, x, g);
        });
        if (end == total_rounds) (void)nodes[static_cast<std::size_t>(r)].drain(total_rounds - 1, true);
      });
      double mean = 0;
      for (const auto& state : states) mean += state.loss_count > 0 ? state.loss_sum / state.loss_count / n : 0.0;
      loss_sum += mean * static_cast<double>(end - t);
      loss_count += end - t;
      t = end;
      const auto* row = evaluate(t, bytes_of(node_at));
      if (progress) progress(t, total_rounds, row);
    }
    result.neighbor_sum_error = neighbor_sum_error(std::span<const Node>(nodes));
    record_async_stats(result, n, node_at);
    std::vector<SlowDevice> used;
    for (const auto& state : states) used.push_back(state.device);
    result.slow_compute_ratio = slow_compute_ratio(c, used, result.gradient_steps);
  }
  result.wait_seconds = result.async_bounds.wait_seconds;
}

}  // namespace decopt::train
