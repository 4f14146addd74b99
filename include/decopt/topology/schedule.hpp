// decopt/topology/schedule.hpp — TopologySchedule: the mixing matrix W(t) of every round t.
//
// Time-varying gossip replaces the fixed W of x ← Wx by a sequence, x(t+1) = W(t) x(t). decopt's
// schedules are periodic, W(t) = W_{t mod p}, and every W_k is symmetric and doubly stochastic with
// positive self weights, so (Nedić & Ozdaglar, "Distributed subgradient methods for multi-agent
// optimization", IEEE TAC 2009; Koloskova et al., "A unified theory of decentralized SGD with
// changing topology and local updates", ICML 2020) the products W(t+p−1) ⋯ W(t) contract the
// disagreement as soon as the union graph ∪_k G(W_k) is connected ("jointly connected"), although
// each round on its own may be disconnected (spectral gap 0). Four factories:
//
//   fixed(T)                       p = 1, W(t) = T: today's static gossip.
//   one_peer_exponential(n)        p = log2 n, the symmetric one-peer exponential matchings
//                                  i ~ i XOR 2^(t mod p) of time_varying.hpp (Ying et al.,
//                                  "Exponential graph is provably efficient for decentralized deep
//                                  training", NeurIPS 2021): one neighbour per node per round, and
//                                  any p consecutive rounds multiply to exactly 11ᵀ/n.
//   random_matchings(n, p, seed)   p seeded uniformly random maximal matchings (a Fisher–Yates
//                                  shuffle paired off; for odd n one node sits out), weight 1/2 —
//                                  the randomized gossip of Boyd et al., "Randomized gossip
//                                  algorithms", IEEE Trans. Inf. Theory 2006, made periodic and
//                                  deterministic so every transport sees the same sequence.
//   cyclic(Ws)                     a user-supplied sequence of Topologies or of matrices.
//
// Every factory throws ConfigError naming the problem: n mismatch between rounds, an empty
// sequence, period 0, a matrix that is not symmetric and doubly stochastic or has a zero self
// weight, a union graph that is not connected.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "decopt/core/eigen.hpp"
#include "decopt/core/error.hpp"
#include "decopt/core/rng.hpp"
#include "decopt/topology/time_varying.hpp"
#include "decopt/topology/topology.hpp"

namespace decopt {

/// A periodic sequence of symmetric doubly stochastic mixing matrices W(t) = W_{t mod period()},
/// jointly connected. An immutable value; cheap to copy (the Topologies share their caches).
class TopologySchedule {
 public:
  /// Static gossip: W(t) = topology for every t (period 1).
  static TopologySchedule fixed(Topology topology) {
    std::string name = "fixed(" + topology.name() + ")";
    return TopologySchedule({std::move(topology)}, std::move(name));
  }

  /// The symmetric one-peer exponential sequence on n = 2^τ nodes (time_varying.hpp), period τ.
  /// ConfigError unless n is a power of two.
  static TopologySchedule one_peer_exponential(int n) {
    const OnePeerExponential seq(n);
    std::vector<Topology> rounds;
    for (int k = 0; k < seq.period(); ++k) rounds.push_back(seq.at(k));
    return TopologySchedule(std::move(rounds), "one_peer_exponential(" + std::to_string(n) + ")");
  }

  /// `period` seeded random maximal matchings of n nodes, each edge with weight 1/2 (the other
  /// node of a pair keeps 1/2; an unmatched node keeps 1). Same (n, period, seed), same sequence on
  /// every machine. ConfigError for n < 1, period < 1, or when the matchings drawn are not
  /// jointly connected (with n − 1 > period·⌊n/2⌋ edges they cannot be: raise the period).
  static TopologySchedule random_matchings(int n, int period, std::uint64_t seed) {
    detail::require(n >= 1, "random_matchings: n must be >= 1 (got " + std::to_string(n) + ")");
    detail::require(period >= 1, "random_matchings: period must be >= 1 (got " + std::to_string(period) + ")");
    Rng rng(seed);
    std::vector<int> order(static_cast<std::size_t>(n));
    std::vector<Topology> rounds;
    rounds.reserve(static_cast<std::size_t>(period));
    for (int k = 0; k < period; ++k) {
      std::iota(order.begin(), order.end(), 0);
      for (std::size_t i = order.size(); i > 1; --i)
        std::swap(order[i - 1], order[static_cast<std::size_t>(rng.below(i))]);
      graphs::EdgeList edges;
      for (std::size_t i = 0; i + 1 < order.size(); i += 2) edges.emplace_back(order[i], order[i + 1]);
      rounds.push_back(Topology::from_graph(n, edges, WeightRule::MetropolisHastings,
                                            "random_matching(" + std::to_string(n) + ", k=" + std::to_string(k),
                                            false));
    }
    return TopologySchedule(std::move(rounds), "random_matchings(" + std::to_string(n) + ", period=" +
                                                   std::to_string(period) + ", seed=" + std::to_string(seed) +
                                                   ")");
  }

  /// A user-supplied sequence of Topologies, used in order and repeated.
  static TopologySchedule cyclic(std::vector<Topology> rounds) {
    const std::string name = "cyclic(" + std::to_string(rounds.size()) + " rounds)";
    return TopologySchedule(std::move(rounds), name);
  }

  /// A user-supplied sequence of mixing matrices; each round may be disconnected, but must be
  /// symmetric, non-negative, doubly stochastic (rows sum to 1) with positive self weights (a
  /// round with a zero diagonal may swap values instead of averaging them).
  static TopologySchedule cyclic(const std::vector<Eigen::MatrixXd>& matrices) {
    std::vector<Topology> rounds;
    rounds.reserve(matrices.size());
    for (std::size_t k = 0; k < matrices.size(); ++k) {
      try {
        rounds.push_back(Topology::from_matrix_checked(matrices[k], false));
      } catch (const ConfigError& e) {
        throw ConfigError("schedule round " + std::to_string(k) + ": " + e.what());
      }
    }
    for (std::size_t k = 0; k < rounds.size(); ++k)
      for (int i = 0; i < rounds[k].size(); ++i)
        detail::require(rounds[k].self_weight(i) > 0.0,
                        "schedule round " + std::to_string(k) + " gives node " + std::to_string(i) +
                            " self weight 0 (such a round can swap values instead of averaging them)");
    return cyclic(std::move(rounds));
  }

  /// Number of nodes.
  [[nodiscard]] int size() const noexcept { return rounds_.front().size(); }
  /// p: W(t + p) = W(t).
  [[nodiscard]] int period() const noexcept { return static_cast<int>(rounds_.size()); }
  /// W(t) for round t ≥ 0; the reference lives as long as the schedule.
  [[nodiscard]] const Topology& at(long round) const {
    if (round < 0) throw ConfigError("schedule: round must be >= 0 (got " + std::to_string(round) + ")");
    return rounds_[static_cast<std::size_t>(round % period())];
  }
  /// The union graph: every edge that appears in some round, with Metropolis–Hastings weights
  /// (connected; its neighbour lists are the node's potential peers).
  [[nodiscard]] const Topology& union_graph() const noexcept { return union_; }
  /// The graph a network (SimulatedNetwork, ThreadNetwork, MPI) for this schedule is built on,
  /// and whose neighbour order the optimizer's messages follow: W itself for a static schedule
  /// (period 1; the optimizer then keeps one public copy, exactly today's gossip), else the union
  /// graph (its edges are the potential peers; the optimizer keeps a copy per edge).
  [[nodiscard]] const Topology& transport_graph() const noexcept {
    return rounds_.size() == 1 ? rounds_.front() : union_;
  }
  /// "fixed(ring(8))", "one_peer_exponential(16)", "random_matchings(8, period=4, seed=1)", …
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  /// A 64-bit hash of the period and of every round's Topology::fingerprint(), in order (the name
  /// is not hashed). Checkpoints record it; MPI ranks compare it.
  [[nodiscard]] std::uint64_t fingerprint() const noexcept { return fingerprint_; }

  friend bool operator==(const TopologySchedule& a, const TopologySchedule& b) noexcept {
    return a.rounds_ == b.rounds_;
  }

 private:
  TopologySchedule(std::vector<Topology> rounds, std::string name)
      : rounds_(std::move(rounds)), name_(std::move(name)), union_(make_union(rounds_, name_)) {
    std::uint64_t h = detail::mix64(0x7363686564756c65ULL ^ static_cast<std::uint64_t>(rounds_.size()));
    for (const Topology& t : rounds_) h = detail::fold_hash(h, t.fingerprint());
    fingerprint_ = h;
  }

  /// Validates the sequence (non-empty, one n) and builds its union graph.
  static Topology make_union(const std::vector<Topology>& rounds, const std::string& name) {
    detail::require(!rounds.empty(), name + ": the sequence is empty (period 0); give at least one round");
    const int n = rounds.front().size();
    graphs::EdgeList edges;
    for (std::size_t k = 0; k < rounds.size(); ++k) {
      const Topology& t = rounds[k];
      detail::require(t.size() == n, name + ": round " + std::to_string(k) + " (" + t.name() + ") has " +
                                         std::to_string(t.size()) + " nodes, round 0 has " + std::to_string(n));
      for (int i = 0; i < n; ++i)
        for (const Edge& e : t.neighbors(i))
          if (i < e.node) edges.emplace_back(i, e.node);
    }
    try {
      return Topology::from_graph(n, edges, WeightRule::MetropolisHastings, "union(" + name, true);
    } catch (const ConfigError& e) {
      throw ConfigError(name + " is not jointly connected (the union of its rounds): " + e.what());
    }
  }

  std::vector<Topology> rounds_;
  std::string name_;
  Topology union_;
  std::uint64_t fingerprint_ = 0;
};

}  // namespace decopt
