// decopt/topology/time_varying.hpp — time-varying gossip: the symmetric one-peer exponential
// sequence.
//
// The one-peer exponential graph of Assran et al. ("Stochastic gradient push for distributed deep
// learning", ICML 2019) and Ying et al. ("Exponential graph is provably efficient for
// decentralized deep training", NeurIPS 2021) has node i send to i + 2^(t mod log2 n) at round
// t. That graph is directed: i sends to i + 2^k but receives from i − 2^k, so W_t is doubly
// stochastic but not symmetric (except for k = log2(n) − 1). decopt's consensus step assumes a
// symmetric W, so this header builds the symmetric variant instead: at round t, with
// k = t mod log2 n, node i averages with its hypercube partner i XOR 2^k,
//
//     W_t = (I + P_k)/2,   (P_k x)_i = x_{i XOR 2^k},
//
// a perfect matching with weights 1/2 (what Metropolis–Hastings gives for degree 1). Each W_t is
// symmetric and doubly stochastic but, for n ≥ 4, disconnected (its spectral_gap() is 0); the
// sequence is jointly connected, and the product over one period is exact averaging:
//
//     W_{log2(n) − 1} ⋯ W_1 W_0 = ⊗_k (11ᵀ/2) = 11ᵀ/n,
//
// exactly in floating point, since every entry of every partial product is a power of two (the
// matrices commute, so any log2(n) consecutive rounds do the same). This is the finite-time
// consensus property of Ying et al. 2021 (Thm. 1) for n a power of two.
#pragma once

#include <algorithm>
#include <bit>
#include <string>
#include <utility>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/topology/topology.hpp"

namespace decopt {

/// The symmetric one-peer exponential sequence on n = 2^τ nodes: round t pairs i with
/// i XOR 2^(t mod τ), weight 1/2. Period τ = log2 n (1 when n = 1: the single-node topology).
class OnePeerExponential {
 public:
  /// n must be a power of two (ConfigError otherwise: the pairing needs one).
  explicit OnePeerExponential(int n) : n_(n) {
    detail::require(n >= 1 && std::has_single_bit(static_cast<unsigned>(n)),
                    "one_peer_exponential: n must be a power of two >= 1 (got " + std::to_string(n) + ")");
    const int period = std::max(1, std::countr_zero(static_cast<unsigned>(n)));
    rounds_.reserve(static_cast<std::size_t>(period));
    for (int k = 0; k < period; ++k) {
      graphs::EdgeList edges;
      if (n > 1)
        for (int i = 0; i < n; ++i)
          if (const int j = i ^ (1 << k); i < j) edges.emplace_back(i, j);
      rounds_.push_back(Topology::from_graph(
          n, edges, WeightRule::MetropolisHastings,
          "one_peer_exponential(" + std::to_string(n) + ", k=" + std::to_string(k), false));
    }
  }

  /// Number of nodes.
  [[nodiscard]] int size() const noexcept { return n_; }
  /// τ = log2 n rounds per cycle (1 for n = 1).
  [[nodiscard]] int period() const noexcept { return static_cast<int>(rounds_.size()); }
  /// W_t for round t ≥ 0: the matching i ~ i XOR 2^(t mod τ). The reference stays valid as long as
  /// this sequence does.
  [[nodiscard]] const Topology& at(long round) const {
    if (round < 0) throw ConfigError("one_peer_exponential: round must be >= 0 (got " + std::to_string(round) + ")");
    return rounds_[static_cast<std::size_t>(round % period())];
  }

 private:
  int n_;
  std::vector<Topology> rounds_;
};

}  // namespace decopt
