// decopt/optimizer/async_simulation.hpp — n AsyncGossip nodes in one process on a virtual clock,
// event by event: asynchronous gossip made deterministic.
//
// Each node has a virtual time. Its gradients cost `gradient_seconds[i]` of the node's time (it
// computes them itself) plus `gradient_delay_seconds[i]` that it gossips through (a slower
// device: the gradient is ready that much later), each scaled by (1 + jitter·u), u ~ U[−1, 1)
// drawn from a per-node stream of `seed`; a gossip round costs `round_seconds`. Messages travel
// over a SimulatedNetwork under the LinkModel (arrival = post time + queueing + bytes/bandwidth +
// latency). The simulation repeatedly takes the node with the earliest next event — ties by rank —
// and runs it to its next event:
//   begin  at t: no gradient pending → compute one on x (t += its compute time; ready at t + its
//          delay); a gradient ready by t, or due (k rounds old: t = its ready time), is applied;
//          post at t; wait from t + round_seconds
//   wait   at t: apply what has arrived by t; mix when no neighbour is more than k rounds behind,
//          else sleep until the next message it needs arrives
// Nothing depends on the machine or on thread timing, so the same seed and speed model give the
// same bits every run. drain() then applies every message still queued (s = Σ_j w_ij x̂_j).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"
#include "decopt/optimizer/async_gossip.hpp"
#include "decopt/optimizer/neighbor_sum_error.hpp"
#include "decopt/transport/simulated_network.hpp"

namespace decopt {

/// How fast each node of an AsyncSimulation computes, in virtual seconds.
struct AsyncSpeedModel {
  std::vector<double> gradient_seconds;        ///< per node: compute of one gradient (empty: 1e-3 each)
  std::vector<double> gradient_delay_seconds;  ///< per node: extra time until it is ready, gossiped through (empty: 0)
  double round_seconds = 0;                    ///< coding and mixing of one gossip round
  double jitter = 0;                           ///< relative spread of each gradient's times, in [0, 1)
  std::uint64_t seed = 0;                      ///< the jitter's streams

  /// One node (`slow`) `factor`× slower to compute than the others (each `seconds` per gradient and
  /// round): its gradient is ready (factor − 1)·(seconds + round_seconds) later, gossiped through.
  static AsyncSpeedModel one_slow(int n, int slow, double factor, double seconds, double round_seconds = 0) {
    AsyncSpeedModel m;
    m.gradient_seconds.assign(static_cast<std::size_t>(n), seconds);
    m.gradient_delay_seconds.assign(static_cast<std::size_t>(n), 0.0);
    m.round_seconds = round_seconds;
    if (slow >= 0 && slow < n) m.gradient_delay_seconds[static_cast<std::size_t>(slow)] = (factor - 1) * (seconds + round_seconds);
    return m;
  }

  /// @throws ConfigError for sizes other than n, or times that are negative or not finite
  void validate(int n) const {
    auto time = [](double t, const char* what) {
      detail::require(std::isfinite(t) && t >= 0 && t <= LinkModel::kMaxLatencySeconds,
                      std::string("AsyncSpeedModel::") + what + " must be finite seconds in [0, 86400], got " +
                          detail::format_double(t));
    };
    auto times = [n, &time](const std::vector<double>& v, const char* what) {
      detail::require(v.empty() || v.size() == static_cast<std::size_t>(n),
                      std::string("AsyncSpeedModel::") + what + " has " + std::to_string(v.size()) + " entries for " +
                          std::to_string(n) + " nodes");
      for (double t : v) time(t, what);
    };
    times(gradient_seconds, "gradient_seconds");
    times(gradient_delay_seconds, "gradient_delay_seconds");
    time(round_seconds, "round_seconds");
    detail::require(std::isfinite(jitter) && jitter >= 0 && jitter < 1,
                    "AsyncSpeedModel::jitter must be in [0, 1), got " + detail::format_double(jitter));
  }
};

/**
 * @brief n nodes of `Node` (an AsyncGossip) over user buffers, on one virtual clock, event-driven.
 */
template <class Node>
class AsyncSimulation {
 public:
  using Compressor = typename Node::Compressor;
  using Prox = typename Node::Prox;

  /// @param models one buffer per node (the nodes update them in place); the same x⁰ on every node
  /// @throws ConfigError for a model count other than the topology's, a bad speed model or link
  ///         model (declared compute is refused: the speed model is the clock here)
  AsyncSimulation(const Topology& topology, std::span<const std::span<float>> models, AsyncOptions options = {},
                  AsyncSpeedModel speed = {}, LinkModel link = {}, Compressor compressor = {}, Prox prox = {})
      : network_(topology, link), speed_(std::move(speed)) {
    const int n = topology.size();
    detail::require(models.size() == static_cast<std::size_t>(n),
                    "AsyncSimulation: " + std::to_string(models.size()) + " models for " + std::to_string(n) + " nodes");
    detail::require(link.declared_compute == nullptr,
                    "AsyncSimulation: the speed model is the clock; LinkModel::declared_compute does not apply");
    speed_.validate(n);
    nodes_.reserve(models.size());
    for (int i = 0; i < n; ++i) {
      nodes_.emplace_back(models[static_cast<std::size_t>(i)], topology, network_.endpoint(i), options, compressor, prox);
      clocks_.push_back({Rng::derive(speed_.seed, {static_cast<std::uint64_t>(i), 0x73706565ULL /* "spee" */})});
    }
  }

  /// Runs every node until it has finished `rounds` gossip rounds in all (a later call continues).
  /// @param grad grad(i, x, g) → loss or void: node i's gradient at x
  /// @throws Error naming the nodes when no node can move (cannot happen with a correct transport)
  template <class Grad>
  void run(long rounds, Grad&& grad) {
    for (;;) {
      int next = -1;
      double when = std::numeric_limits<double>::infinity();
      bool any_left = false;
      for (int i = 0; i < size(); ++i) {
        if (nodes_[static_cast<std::size_t>(i)].round() >= rounds) continue;
        any_left = true;
        const double t = event_time(i);
        if (t < when) when = t, next = i;  // strict: ties go to the lower rank
      }
      if (!any_left) return;
      detail::require(next >= 0, "AsyncSimulation: every unfinished node waits for a message nobody will send");
      step_node(next, when, grad);
    }
  }

  /// Applies every message still queued; afterwards s = w_ii x̂_i + Σ_j w_ij x̂_j on every node.
  void drain() {
    long last = -1;
    for (const auto& node : nodes_) last = std::max(last, node.round() - 1);
    for (int i = 0; i < size(); ++i) {
      Node& node = nodes_[static_cast<std::size_t>(i)];
      auto& endpoint = network_.endpoint(i);
      while (!node.drain(last, false)) {
        const auto arrival = endpoint.next_arrival(node.next_slot());
        detail::require(arrival.has_value(), "AsyncSimulation::drain: node " + std::to_string(i) +
                                                 " waits for a message that was never posted");
        endpoint.advance(std::max(0.0, *arrival - endpoint.virtual_time()));
      }
    }
  }

  [[nodiscard]] int size() const noexcept { return static_cast<int>(nodes_.size()); }
  [[nodiscard]] Node& node(int i) { return nodes_.at(static_cast<std::size_t>(i)); }
  [[nodiscard]] const Node& node(int i) const { return nodes_.at(static_cast<std::size_t>(i)); }
  /// The latest virtual time of any node: the simulated wall time so far.
  [[nodiscard]] double virtual_time() const noexcept {
    double t = 0;
    for (const auto& c : clocks_) t = std::max(t, c.time);
    return t;
  }
  /// max over nodes and coordinates of |s − (w_ii x̂_i + Σ_j w_ij x̂_j)|, the sum recomputed in
  /// double from every node's x̂ (0 up to float rounding after drain()).
  [[nodiscard]] double neighbor_sum_error() const { return decopt::neighbor_sum_error(std::span<const Node>(nodes_)); }

 private:
  struct NodeClock {
    Rng jitter;
    double time = 0;     // the node's virtual time
    double ready = 0;    // when its pending gradient is ready
    bool tried = false;  // waiting: it tried to finish at `time` and could not
  };

  [[nodiscard]] double scaled(int i, double seconds) {
    if (speed_.jitter == 0 || seconds == 0) return seconds;
    return seconds * (1 + speed_.jitter * (2 * clocks_[static_cast<std::size_t>(i)].jitter.uniform() - 1));
  }
  [[nodiscard]] static double at(const std::vector<double>& v, int i, double otherwise) {
    return v.empty() ? otherwise : v[static_cast<std::size_t>(i)];
  }

  /// When node i can next do something.
  [[nodiscard]] double event_time(int i) const {
    const Node& node = nodes_[static_cast<std::size_t>(i)];
    const NodeClock& c = clocks_[static_cast<std::size_t>(i)];
    if (!node.posted() || !c.tried) return c.time;
    const auto arrival = network_endpoint(i).next_arrival(node.next_slot());
    return arrival ? std::max(c.time, *arrival) : std::numeric_limits<double>::infinity();
  }
  [[nodiscard]] const SimulatedNetwork::Endpoint& network_endpoint(int i) const {
    return const_cast<SimulatedNetwork&>(network_).endpoint(i);
  }

  /// Moves node i's clock (and its endpoint's) to `t`.
  void set_time(int i, double t) {
    NodeClock& c = clocks_[static_cast<std::size_t>(i)];
    c.time = std::max(c.time, t);
    auto& endpoint = network_.endpoint(i);
    endpoint.advance(std::max(0.0, c.time - endpoint.virtual_time()));
  }

  template <class Grad>
  void step_node(int i, double when, Grad& grad) {
    Node& node = nodes_[static_cast<std::size_t>(i)];
    NodeClock& c = clocks_[static_cast<std::size_t>(i)];
    set_time(i, when);
    if (node.posted()) {  // waiting
      if (node.try_finish()) {
        c.tried = false;
      } else {
        c.tried = true;
      }
      return;
    }
    if (!node.gradient_pending()) {
      node.start_gradient([&](std::span<const float> x, std::span<float> g) { return grad(i, x, g); });
      set_time(i, c.time + scaled(i, at(speed_.gradient_seconds, i, 1e-3)));
      c.ready = c.time + scaled(i, at(speed_.gradient_delay_seconds, i, 0.0));
    }
    if (node.gradient_pending() && (c.ready <= c.time || node.gradient_due())) {
      set_time(i, c.ready);
      node.apply_gradient();
    }
    node.post();
    set_time(i, c.time + speed_.round_seconds);
    c.tried = false;
  }

  SimulatedNetwork network_;
  AsyncSpeedModel speed_;
  std::vector<Node> nodes_;
  std::vector<NodeClock> clocks_;
};

}  // namespace decopt
