// train/push_sum_flags.hpp — decopt-train's flags for Stochastic Gradient Push (--algorithm sgp):
// the directed graph it gossips over (--topology directed-ring | directed-exponential) and the
// usage check that refuses every flag that does not apply to it.
//
// SGP (Assran, Loizou, Ballas & Rabbat, "Stochastic Gradient Push for Distributed Deep Learning",
// ICML 2019) mixes with push-sum's column-stochastic A_ji = 1/(d_i + 1) over a directed graph
// (decopt/topology/directed.hpp, decopt/optimizer/push_sum.hpp): its messages are uncompressed
// float32 shares (8 + 4d bytes per out-neighbour), it has no consensus step γ, no compressor, coder,
// prox or error memory. The graph is named by --topology, one flag for the graph a run gossips
// over, rather than a second --directed flag that would leave --topology meaning nothing under sgp:
// a directed --topology with another algorithm, or sgp with an undirected one, is a usage error.
#pragma once

#include <CLI/CLI.hpp>
#include <decopt/decopt.hpp>

#include <string>
#include <utility>
#include <vector>

#include "train/config.hpp"

namespace decopt::train {

/// Whether --topology names a directed graph (directed-ring, directed-exponential).
[[nodiscard]] inline bool directed_topology(const TrainConfig& c) { return c.topology.starts_with("directed-"); }

/// The directed --topology on --nodes nodes. @throws ConfigError for an undirected --topology or n < 2
inline DirectedGraph make_directed_graph(const TrainConfig& c) {
  if (c.topology == "directed-ring") return DirectedGraph::ring(c.nodes);
  if (c.topology == "directed-exponential") return DirectedGraph::exponential(c.nodes);
  throw ConfigError("--topology " + c.topology + " is not a directed graph (directed-ring, directed-exponential)");
}

/// Refuses, as usage errors (decopt-train exits 2), a directed --topology with an algorithm other
/// than sgp, sgp on an undirected --topology, and every flag sgp does not run with, naming it and
/// why. Supported with sgp: --nodes, --epochs/--rounds, --seed, --partition, --lr, --momentum
/// (heavy ball), --batch, --hidden, the evaluation flags, --coder raw, --transport sim | threads,
/// --timeout, --checkpoint/--resume, the output flags.
/// @param app the parsed command line (to see which flags were given)
/// @throws CLI::ValidationError "--topology: ..." or "--algorithm sgp: ..."
inline void check_push_sum_flags(const CLI::App& app, const TrainConfig& c) {
  bool sgp = false;
  for (const auto& algorithm : c.algorithms()) {
    sgp |= algorithm == "sgp";
    if (algorithm != "sgp" && directed_topology(c))
      throw CLI::ValidationError("--topology", c.topology + " is a directed graph: only --algorithm sgp (push-sum) runs on it, not " +
                                                   algorithm);
  }
  if (!sgp) return;
  auto refuse = [](const std::string& why) { throw CLI::ValidationError("--algorithm sgp", why); };
  if (!directed_topology(c))
    refuse("Stochastic Gradient Push runs on a directed graph: --topology directed-ring or directed-exponential, not " + c.topology);
  if (c.transport == "mpi")
    refuse("runs on --transport sim or threads; mpi is not wired for it (decopt-train's MPI driver drives the "
           "undirected algorithms only)");
  if (c.step != "sync") refuse("pushes one round at a time (--step sync), not --step " + c.step);
  if (c.schedule != "static") refuse("gossips over a fixed directed --topology, not --schedule " + c.schedule);
  if (c.local_steps != 1) refuse("takes one gradient step per round, not --local-steps " + std::to_string(c.local_steps));
  if (c.on_lost_peer != "fail") refuse("has no lost-peer repair: --on-lost-peer drop does not apply");
  // Flags that mean nothing for SGP, with the reason.
  const std::vector<std::pair<std::vector<std::string>, std::string>> not_applicable{
      {{"--gamma"}, "mixes with push-sum's weights 1/(d_i + 1): there is no consensus step"},
      {{"--compressor", "--levels", "--norm", "--ratio", "--rank", "--bucket"},
       "sends uncompressed float32 shares (8 + 4d bytes per out-neighbour): no compressor"},
      {{"--lambda", "--lambda-warmup", "--lambda-ramp", "--support-patience", "--support-levels", "--support-log"},
       "has no l1 prox and no support coding"},
      {{"--gradient-tracking"}, "is not gradient tracking"},
      {{"--schedule-period", "--erdos-renyi-p"}, "gossips over --topology directed-ring or directed-exponential"},
      {{"--max-staleness", "--max-gradient-age", "--slow-node", "--slow-factor", "--slow-reference-ms"},
       "is synchronous: the straggler flags do not apply"},
      {{"--fail-node", "--fail-round"}, "has no lost-peer repair (a lost in-neighbour ends the run)"},
      {{"--latency-ms", "--bandwidth-mbps", "--step-seconds"}, "runs without a link model (no simulated clock)"},
      {{"--dp-clip", "--dp-noise", "--dp-epsilon", "--clipping", "--dp-r", "--dp-delta"},
       "is not wired for differential privacy in decopt-train"}};
  for (const auto& [flags, why] : not_applicable)
    for (const auto& flag : flags)
      if (app.count(flag) > 0) refuse(flag + " does not apply: SGP " + why);
}

}  // namespace decopt::train
