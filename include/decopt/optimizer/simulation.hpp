// decopt/optimizer/simulation.hpp — n optimizer nodes driven in lockstep in one process, on T threads.
//
// Each round is phases: every node's begin_round (local steps, compression, post), then every
// node's finish_round (collect, consensus, prox), then, when due, every node's begin_resync and
// finish_resync. Within a phase the nodes are independent (a node writes only its own state and
// its own outgoing message; it reads its neighbours' messages only in the next phase), so a phase
// runs its nodes on a pool of T threads (decopt/core/thread_pool.hpp) and the models come out the
// same, bit for bit, for every T; the per-node statistics are added in node order after each phase
// so the floating-point sums do not depend on T either. The nodes are the same
// DecentralizedOptimizer objects a ThreadNetwork or MPI run uses, over a SimulatedNetwork.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/core/thread_pool.hpp"
#include "decopt/optimizer/lr_schedule.hpp"
#include "decopt/optimizer/neighbor_sum_error.hpp"
#include "decopt/optimizer/options.hpp"
#include "decopt/parameters/layout.hpp"
#include "decopt/topology/schedule.hpp"
#include "decopt/transport/simulated_network.hpp"

namespace decopt {

/// What one simulated round did over all nodes.
struct NetworkRoundStats {
  long round = 0;
  std::uint64_t bytes_sent = 0;      ///< over all nodes
  std::uint64_t max_message_bytes = 0;
  double mean_loss = std::nan("");   ///< mean of the nodes' losses, when the callback returns them
  double compute_seconds = 0;        ///< summed over nodes
  long skipped_nodes = 0;
};

/// A node of a Simulation threw. The message names the node, the round and the phase and repeats
/// the original message; the original exception is nested (std::rethrow_if_nested(e) rethrows it,
/// with its own type: NonFiniteError, DecodeError, the gradient callback's own...).
class NodeError : public Error {
 public:
  NodeError(int node, long round, const std::string& phase, const std::string& what)
      : Error("decopt: node " + std::to_string(node) + " failed in round " + std::to_string(round) + " (" + phase +
              "): " + what),
        node_(node), round_(round) {}
  [[nodiscard]] int node() const noexcept { return node_; }
  [[nodiscard]] long round() const noexcept { return round_; }

 private:
  int node_;
  long round_;
};

/// Mean squared distance of the nodes' models to their average: (1/n) Σ_i ‖x_i − x̄‖².
inline double consensus_distance(std::span<const std::span<float>> models) {
  if (models.empty()) return 0;
  const std::size_t d = models[0].size();
  std::vector<double> mean(d, 0.0);
  for (auto m : models)
    for (std::size_t k = 0; k < d; ++k) mean[k] += m[k];
  for (auto& v : mean) v /= static_cast<double>(models.size());
  double total = 0;
  for (auto m : models)
    for (std::size_t k = 0; k < d; ++k) total += (m[k] - mean[k]) * (m[k] - mean[k]);
  return total / static_cast<double>(models.size());
}

/**
 * @brief n nodes of `Optimizer` (a DecentralizedOptimizer) over user buffers, in lockstep, on T threads.
 *
 * The buffers are the users' (one per node, same size), updated in place. With T > 1 threads the
 * gradient callback is called concurrently for different nodes (as each rank of PyTorch DDP runs
 * its own step): it must be safe to call at the same time for different nodes, i.e. write only
 * node i's own state (its data sampler, its RNG, its model workspace) when called for node i; it
 * is never called for the same node from two threads at once. With T = 1 it is called serially,
 * in node order, on the caller's thread. The models are the same, bit for bit, for every T.
 */
template <class Optimizer>
class Simulation {
 public:
  /// The default thread count: the hardware's (std::thread::hardware_concurrency()), at least 1.
  [[nodiscard]] static int default_threads() noexcept {
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }

  /// Everything a simulation's nodes are built with; every field has a default, so designated
  /// initialisers name only what differs: `{.options = o, .local = Adam{}, .layout = layout}`.
  struct Setup {
    Options options{};
    typename Optimizer::Compressor compressor{};
    typename Optimizer::Prox prox{};
    typename Optimizer::Local local{};
    LinkModel link{};
    int threads = default_threads();
    std::optional<ParameterLayout> layout{};  ///< the tensors of every buffer (the layout constructor)
    /// A neighbour that stops: error (fail) or go on without it (drop; decopt/transport/lost_peers.hpp).
    LostPeerPolicy on_lost_peer = LostPeerPolicy::fail;
    /// Injected failures: each node stops (posts nothing, is no longer driven) from its round on.
    std::vector<NodeFailure> failures{};
    /// Injected rejoins of failed nodes (needs on_lost_peer = drop): each comes back at its round's
    /// boundary + kRepairDelay, pulling a neighbour's model (optimizer/lost_peer_repair.hpp).
    std::vector<NodeRejoin> rejoins{};
  };

  /**
   * @param link    latency and bandwidth of every link, applied to the nodes' virtual clocks
   * @param threads threads that run each phase's nodes (≥ 1; more than the nodes are not used)
   * @throws ConfigError for buffers that do not match the topology, or threads < 1
   */
  Simulation(const Topology& topology, std::vector<std::span<float>> buffers, Options options = {},
             typename Optimizer::Compressor compressor = {}, typename Optimizer::Prox prox = {},
             LinkModel link = {}, int threads = default_threads())
      : Simulation(topology, std::move(buffers),
                   Setup{.options = options, .compressor = std::move(compressor), .prox = std::move(prox),
                         .link = link, .threads = threads}) {}

  /// @throws ConfigError for buffers that do not match the topology or the layout, or threads < 1
  Simulation(const Topology& topology, std::vector<std::span<float>> buffers, Setup setup)
      : Simulation(topology, topology, std::move(buffers), std::move(setup)) {}

  /// Over a TopologySchedule (time-varying gossip; Optimizer's step must follow a schedule,
  /// ScheduledSyncStep or ScheduledOverlappedStep): the network is built on schedule.transport_graph().
  /// @throws ConfigError as above
  Simulation(const TopologySchedule& schedule, std::vector<std::span<float>> buffers, Setup setup)
      : Simulation(schedule.transport_graph(), schedule, std::move(buffers), std::move(setup)) {}

  /// Sets every node's local step size (validated like Options::lr). Call between rounds.
  /// @throws ConfigError for an lr Options::validate refuses (no node is changed)
  void set_learning_rate(double lr) {
    Options check;
    check.lr = lr;
    check.validate();
    for (auto& node : nodes_) node.set_learning_rate(lr);
  }

  /**
   * A network-wide learning-rate schedule: from the next round on, every node's lr is
   * schedule.lr(round, base_lr) at the start of each round (schedule::Constant, Step, Cosine,
   * LinearWarmup of decopt/optimizer/lr_schedule.hpp, or any LrSchedule). A round whose lr the
   * schedule makes 0 (Cosine past total_rounds with min_lr = 0) is a ConfigError naming the round.
   * @throws ConfigError for a schedule that validate() refuses or a base_lr that is not > 0
   */
  template <LrSchedule S>
  void set_schedule(S schedule, double base_lr) {
    schedule.validate();
    set_learning_rate(base_lr);  // checks base_lr
    schedule_ = [schedule = std::move(schedule), base_lr](long round) { return schedule.lr(round, base_lr); };
  }

  /**
   * Runs the following rounds on `threads` threads (the caller's included; capped at the number
   * of nodes). Call between rounds. The models do not depend on it.
   * @throws ConfigError when threads < 1
   */
  void set_threads(int threads) {
    detail::require(threads >= 1, "Simulation: threads must be >= 1, got " + std::to_string(threads));
    pool_.reset();  // join the old workers before starting new ones
    pool_ = std::make_unique<detail::IndexPool>(std::min(threads, std::max(size(), 1)));
  }
  /// Threads that run each phase (fewer than asked when the nodes are fewer or the OS refused some).
  [[nodiscard]] int threads() const noexcept { return pool_->threads(); }

  [[nodiscard]] int size() const noexcept { return static_cast<int>(nodes_.size()); }
  [[nodiscard]] Optimizer& node(int i) { return nodes_.at(static_cast<std::size_t>(i)); }
  [[nodiscard]] const Optimizer& node(int i) const { return nodes_.at(static_cast<std::size_t>(i)); }
  [[nodiscard]] std::span<const std::span<float>> models() const noexcept { return buffers_; }
  [[nodiscard]] const Topology& topology() const noexcept { return network_->topology(); }
  /// Simulated wall time so far under the LinkModel: real compute time plus modelled communication.
  [[nodiscard]] double virtual_time() const noexcept { return network_->virtual_time(); }

  /**
   * One lockstep round. `grad(node, x, g)` computes node's gradient at x (may return the loss);
   * with threads() > 1 it is called concurrently for different nodes (see the class comment).
   * @throws NodeError naming the lowest-numbered node that threw (its exception nested); every
   *         node is then poisoned (they are all mid-round): reload a checkpoint into each node
   *         with load_state() to continue (DecentralizedOptimizer's exception guarantee)
   */
  template <class Grad>
  NetworkRoundStats round(Grad&& grad) {
    const long round = nodes_.empty() ? 0 : first_alive().round();
    if (schedule_) apply_schedule(round);
    for_each_node("begin_round", round, [&grad](Optimizer& node) {
      const int i = node.rank();
      // Bind the node index; call_gradient (concepts.hpp) handles callbacks with or without a loss.
      node.begin_round([&grad, i](std::span<const float> x, std::span<float> g) -> decltype(auto) { return grad(i, x, g); });
    });
    for_each_node("finish_round", round, [this](Optimizer& node) {
      node_stats_[static_cast<std::size_t>(node.rank())] = node.finish_round();
    });
    const NetworkRoundStats stats = sum_in_node_order(round);
    if (!nodes_.empty() && first_alive().resync_due()) {  // every node is due at the same round
      for_each_node("begin_resync", round, [](Optimizer& node) { node.begin_resync(); });
      for_each_node("finish_resync", round, [](Optimizer& node) { node.finish_resync(); });
    }
    repair_lost_peers(round);
    return stats;
  }

  /// Whether node i runs: no injected failure stopped it, or it is back from its rejoin.
  [[nodiscard]] bool alive(int i) const {
    return network_->stopped_at(i) < 0 || back_.at(static_cast<std::size_t>(i));
  }
  /// The nodes that stopped, each with the transport round it stopped at and, once it is back,
  /// the round its rejoin was seen (-1 while it is lost), by node.
  [[nodiscard]] std::vector<LostPeer> lost_nodes() const {
    std::vector<LostPeer> lost;
    for (int i = 0; i < size(); ++i)
      if (network_->stopped_at(i) >= 0)
        lost.push_back({i, network_->stopped_at(i), back_[static_cast<std::size_t>(i)] ? network_->rejoin_round(i) : -1});
    return lost;
  }

  /// (1/n) Σ_i ‖x_i − x̄‖².
  /// Over the surviving nodes (all of them unless a failure was injected).
  [[nodiscard]] double consensus_distance() const { return decopt::consensus_distance(alive_buffers()); }
  /// The buffers of the surviving nodes, in node order.
  [[nodiscard]] std::vector<std::span<float>> alive_buffers() const {
    std::vector<std::span<float>> alive_ones;
    for (int i = 0; i < size(); ++i)
      if (alive(i)) alive_ones.push_back(buffers_[static_cast<std::size_t>(i)]);
    return alive_ones;
  }

  /// max over nodes i and coordinates k of |s_ik − (w_ii x̂_ik + Σ_j w_ij x̂_jk)|: each node's
  /// incremental s against s recomputed from scratch, in double, from every node's own x̂. Float
  /// rounding of the increments only, when every receiver applied exactly the change of x̂ its
  /// sender made (x̂ the same number on every node); the size of a lost or misapplied message
  /// otherwise.
  [[nodiscard]] double neighbor_sum_error() const {
    return decopt::neighbor_sum_error(std::span<const Optimizer>(nodes_), [this](std::size_t i) { return alive(static_cast<int>(i)); });
  }

  /// x̄ = (1/n) Σ_i x_i.
  [[nodiscard]] std::vector<double> average_model() const {
    std::vector<double> mean(buffers_.empty() ? 0 : buffers_[0].size(), 0.0);
    for (auto m : buffers_)
      for (std::size_t k = 0; k < mean.size(); ++k) mean[k] += m[k];
    for (auto& v : mean) v /= static_cast<double>(buffers_.size());
    return mean;
  }

  /// Total bytes sent by all nodes so far.
  [[nodiscard]] std::uint64_t total_bytes_sent() const noexcept {
    std::uint64_t total = 0;
    for (const auto& node : nodes_) total += node.totals().bytes_sent;
    return total;
  }

 private:
  /// The nodes built over `graph` (a Topology or a TopologySchedule), on a network over `topology`.
  template <class Graph>
  Simulation(const Topology& topology, const Graph& graph, std::vector<std::span<float>> buffers, Setup setup)
      : network_(std::make_unique<SimulatedNetwork>(topology, setup.link)), buffers_(std::move(buffers)) {
    network_->set_lost_peer_policy(setup.on_lost_peer);
    for (const NodeFailure& f : setup.failures) network_->inject_failure(f);
    for (const NodeRejoin& j : setup.rejoins) {
      detail::require(setup.on_lost_peer == LostPeerPolicy::drop,
                      "Simulation: the rejoin of node " + std::to_string(j.node) + " needs on_lost_peer = drop");
      if constexpr (requires { Optimizer::supports_rejoin; })
        detail::require(Optimizer::supports_rejoin, "Simulation: node " + std::to_string(j.node) +
                                                        " cannot rejoin with compressor " + Optimizer::pipeline_name() +
                                                        " (it keeps encoder state a restart would break)");
      network_->inject_rejoin(j);
      const long e = j.round + kRepairDelay;
      detail::require(setup.options.exchange_of_round(setup.options.round_of_exchange(e)) == e,
                      "Simulation: node " + std::to_string(j.node) + " would rejoin at exchange " + std::to_string(e) +
                          ", a resynchronisation's; move its rejoin by one round");
    }
    back_.assign(static_cast<std::size_t>(topology.size()), 0);
    detail::require(static_cast<int>(buffers_.size()) == topology.size(),
                    "Simulation: " + std::to_string(buffers_.size()) + " parameter buffers for " +
                        std::to_string(topology.size()) + " nodes");
    for (std::size_t i = 0; i < buffers_.size(); ++i)
      detail::require(buffers_[i].size() == buffers_[0].size(),
                      "Simulation: buffer of node " + std::to_string(i) + " has " + std::to_string(buffers_[i].size()) +
                          " parameters, node 0 has " + std::to_string(buffers_[0].size()));
    nodes_.reserve(buffers_.size());
    for (std::size_t i = 0; i < buffers_.size(); ++i) {
      auto& endpoint = network_->endpoint(static_cast<int>(i));
      if (setup.layout)
        nodes_.emplace_back(buffers_[i], *setup.layout, graph, endpoint, setup.options, setup.compressor, setup.prox,
                            setup.local);
      else
        nodes_.emplace_back(buffers_[i], graph, endpoint, setup.options, setup.compressor, setup.prox, setup.local);
    }
    node_stats_.resize(nodes_.size());
    set_threads(setup.threads);
  }

  /// Sets every node's lr to the schedule's value for `round`.
  /// @throws ConfigError naming the round when the schedule yields an lr Options::validate refuses
  void apply_schedule(long round) {
    const double lr = schedule_(round);
    detail::require(lr > 0 && detail::is_normal_float(lr),
                    "the learning-rate schedule gives round " + std::to_string(round) + " lr = " +
                        detail::format_double(lr) + "; the optimizer needs a normal float32 > 0");
    for (auto& node : nodes_) node.set_learning_rate(lr);
  }

  /// work(node) for every node on the pool; rethrows the lowest-numbered node's exception as a NodeError.
  /// A node that stopped by an injected failure (NodeCrashed) is no longer driven.
  template <class Work>
  void for_each_node(const char* phase, long round, Work&& work) {
    auto job = [this, &work](std::size_t i) {
      if (!alive(static_cast<int>(i))) return;
      try {
        work(nodes_[i]);
      } catch (const NodeCrashed&) {  // the network recorded the stop; the node's state is dead
      }
    };
    if (auto failure = pool_->run(nodes_.size(), job)) {
      poison_every_node(failure->error);
      rethrow_naming_node(*failure, phase, round);
    }
  }

  [[nodiscard]] const Optimizer& first_alive() const {
    for (int i = 0; i < size(); ++i)
      if (alive(i)) return nodes_[static_cast<std::size_t>(i)];
    throw Error("decopt: Simulation: every node has stopped");
  }

  /// The lost-peer repair of every node that has one due (DecentralizedOptimizer::repair_due), in
  /// lockstep: every due node posts, then every due node collects.
  void repair_lost_peers(long round) {
    if constexpr (requires(Optimizer& o) { o.repair_due(); }) repair_due_nodes(round);
  }
  void repair_due_nodes(long round) {
    std::vector<char> due(nodes_.size(), 0);
    std::vector<char> rejoining(nodes_.size(), 0);  // stopped nodes whose rejoin is at this boundary
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      due[i] = alive(static_cast<int>(i)) && nodes_[i].repair_due();
      rejoining[i] = !alive(static_cast<int>(i)) && nodes_[i].rejoin_round() == round + 1;
    }
    if (std::find(due.begin(), due.end(), 1) == due.end() && std::find(rejoining.begin(), rejoining.end(), 1) == rejoining.end())
      return;
    for_each_node("begin_repair", round, [&due](Optimizer& node) {
      if (due[static_cast<std::size_t>(node.rank())]) node.begin_repair();
    });
    for (std::size_t i = 0; i < nodes_.size(); ++i)  // driven again: they pull what the others just posted
      if (rejoining[i]) {
        back_[i] = 1;
        due[i] = 1;
      }
    for_each_node("rejoin", round, [&rejoining](Optimizer& node) {
      if (rejoining[static_cast<std::size_t>(node.rank())]) node.begin_repair();
    });
    for_each_node("finish_repair", round, [&due](Optimizer& node) {
      if (due[static_cast<std::size_t>(node.rank())]) node.finish_repair();
    });
  }

  /// One node failed mid-phase, so none of them can go on: mark every node inconsistent.
  void poison_every_node(const std::exception_ptr& error) {
    std::string cause = "an exception not derived from std::exception";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      cause = e.what();
    } catch (...) {
    }
    for (auto& node : nodes_) node.mark_inconsistent(cause);
  }

  [[noreturn]] static void rethrow_naming_node(const detail::IndexPool::Failure& failure, const char* phase,
                                               long round) {
    const int node = static_cast<int>(failure.index);
    try {
      std::rethrow_exception(failure.error);
    } catch (const std::exception& e) {
      std::throw_with_nested(NodeError(node, round, phase, e.what()));
    } catch (...) {
      std::throw_with_nested(NodeError(node, round, phase, "an exception not derived from std::exception"));
    }
  }

  /// The round's statistics over all nodes, added in node order (the same sums for every T).
  [[nodiscard]] NetworkRoundStats sum_in_node_order(long round) const {
    NetworkRoundStats stats;
    stats.round = round;
    double loss_sum = 0;
    int loss_count = 0;
    for (std::size_t i = 0; i < node_stats_.size(); ++i) {
      if (!alive(static_cast<int>(i))) continue;
      const RoundStats& s = node_stats_[i];
      stats.bytes_sent += s.bytes_sent;
      stats.max_message_bytes = std::max(stats.max_message_bytes, s.message_bytes);
      stats.compute_seconds += s.compute_seconds;
      stats.skipped_nodes += s.skipped ? 1 : 0;
      if (std::isfinite(s.loss)) {
        loss_sum += s.loss;
        ++loss_count;
      }
    }
    if (loss_count > 0) stats.mean_loss = loss_sum / loss_count;
    return stats;
  }

  std::unique_ptr<SimulatedNetwork> network_;  // endpoints point into it: keep its address stable
  std::vector<std::span<float>> buffers_;
  std::vector<Optimizer> nodes_;
  std::vector<RoundStats> node_stats_;       // this round's, one per node (each by its node's thread)
  std::vector<char> back_;                   // per node: back from its rejoin
  std::function<double(long)> schedule_;     // lr of a round, when a schedule is set
  std::unique_ptr<detail::IndexPool> pool_;  // last: its workers are joined before the nodes die
};

}  // namespace decopt
