// train/push_sum_run.hpp — decopt-train's --algorithm sgp: Stochastic Gradient Push on a directed
// graph (decopt/optimizer/push_sum.hpp), on the simulated network or on threads.
//
// Assran, Loizou, Ballas & Rabbat, "Stochastic Gradient Push for Distributed Deep Learning", ICML
// 2019 (Algorithm 1); Nedić & Olshevsky, "Stochastic Gradient-Push for Strongly Convex Functions on
// Time-Varying Directed Graphs", IEEE TAC 2016. Node i keeps a numerator z_i and a weight w_i; each
// round it steps z_i with its local update at the de-biased model x_i = z_i / w_i, sends the share
// (z_i, w_i)/(d_i + 1) to each of its d_i out-neighbours, sums what its in-neighbours sent, and
// writes z_i / w_i into its model buffer — the model every evaluation scores. A message is 8 + 4d
// bytes (w's share as float64, z's as float32), one per out-neighbour per round.
//
// The same data split, initial model, batch streams, evaluation schedule, checkpoint file and JSON
// as the other algorithms (experiment.hpp's run_with), so that an SGP row and a D-PSGD row differ
// only in the algorithm and its graph. The local update is SGD, or heavy ball with --momentum.
// Same seed, same bits on sim and threads: every node sums its in-neighbours in ascending order.
#pragma once

#include "train/experiment.hpp"

namespace decopt::train {

/// --algorithm sgp: StochasticGradientPush over --topology directed-ring | directed-exponential,
/// with SGD, or heavy ball when --momentum > 0 (defined in train/push_sum_run.cpp). The flags were
/// checked by check_push_sum_flags (push_sum_flags.hpp).
/// @throws ConfigError for a graph that does not fit --nodes, a transport other than sim or threads,
///         a damaged or foreign --resume file; TransportError for a node silent beyond --timeout
RunResult run_push_sum(const TrainConfig& c, const TrainingData& data, const ProgressFn& progress);

}  // namespace decopt::train
