// torch/experiment.hpp — one decentralized training run of the CNN: the data split over the
// nodes (fashion/partition.hpp, as decopt-train), a CnnNode and a decopt optimizer per node over
// that node's bound flat buffer, rounds on the chosen transport, and an evaluation every
// --eval-every rounds: every node's own test accuracy, and the test accuracy of the average of
// the node models.
//
// The transports run the same per-node calls in the same order, so a seed gives the same bits on
// each (LibTorch's CPU kernels are deterministic at a fixed thread count): sim runs every node's
// first half of a round, then every node's second half (lockstep, one thread); threads gives each
// node a thread and runs its halves back to back; mpi does the same with one node per rank.
// Evaluations are sums over nodes, then over ranks (Reduce), so one evaluation serves every transport.
#pragma once

#include <decopt/decopt.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#ifdef DECOPT_TRAIN_WITH_MPI
#include "train/mpi_run.hpp"
#endif

#include "fashion/batches.hpp"
#include "fashion/partition.hpp"
#include "torch/cnn.hpp"
#include "torch/config.hpp"
#include "torch/node.hpp"
#include "train/experiment.hpp"

namespace decopt::torch_example {

/// The outcome of one run: decopt-train's, plus what only this program measures.
struct TorchRunResult {
  train::RunResult run;
  std::string local;
  double average_model_accuracy = 0;  ///< test accuracy of (1/n) Σ_i x_i at the last evaluation
  double decopt_seconds = 0;          ///< wall time inside decopt's calls, mean over nodes (node.hpp)
};

namespace detail {

/// Sums per-node figures over the processes of the run: the identity for sim and threads (every
/// node is here), an all-reduce under MPI.
using Reduce = std::function<std::vector<double>(std::vector<double>)>;

/// The evaluation of the nodes held here (all of them, or this rank's), completed by `reduce`.
class Evaluator {
 public:
  Evaluator(const TorchTrainConfig& c, const train::TrainingData& data, int nodes, Reduce reduce)
      : data_(data), nodes_(nodes), reduce_(std::move(reduce)), average_(c.train.seed, c.layerwise) {}

  /// One evaluation row of `local` (the nodes here), after `round` rounds; also sets
  /// average_model_accuracy(). `bytes_here` and `loss_here` are sums over `local`.
  template <class NodeList>
  train::EvalRow evaluate(NodeList& local, long round, long rounds_per_epoch, double bytes_here, double loss_here) {
    train::EvalRow row;
    row.round = round;
    row.epoch = static_cast<double>(round) / static_cast<double>(rounds_per_epoch);
    const std::size_t d = local.front()->parameters().size();
    std::vector<double> figures(5, 0.0);  // accuracy, loss, sparsity, bytes, training loss
    std::vector<double> sum(d, 0.0);      // Σ_i x_i
    for (auto& node : local) {
      const Evaluation e = evaluate_node(*node);
      const auto x = node->parameters();
      figures[0] += e.accuracy;
      figures[1] += e.loss;
      figures[2] += static_cast<double>(std::count(x.begin(), x.end(), 0.0f)) / static_cast<double>(d);
      for (std::size_t k = 0; k < d; ++k) sum[k] += x[k];
    }
    figures[3] = bytes_here;
    figures[4] = loss_here;
    figures = reduce_(figures);
    sum = reduce_(sum);
    const double n = nodes_;
    row.test_accuracy = figures[0] / n;
    row.test_loss = figures[1] / n;
    row.sparsity = figures[2] / n;
    row.bytes_sent = static_cast<std::uint64_t>(figures[3]);
    row.train_loss = figures[4] / n;
    double distance = 0;
    for (auto& node : local) {
      const auto x = node->parameters();
      for (std::size_t k = 0; k < d; ++k) distance += (x[k] - sum[k] / n) * (x[k] - sum[k] / n);
    }
    row.consensus_distance = reduce_({distance})[0] / n;
    const auto mean = average_.binding.parameters();
    for (std::size_t k = 0; k < d; ++k) mean[k] = static_cast<float>(sum[k] / n);
    average_accuracy_ = torch_example::evaluate(*average_.net, data_.test).accuracy;
    return row;
  }

  [[nodiscard]] double average_model_accuracy() const { return average_accuracy_; }

 private:
  Evaluation evaluate_node(CnnNode& node) { return torch_example::evaluate(node.net(), data_.test); }

  const train::TrainingData& data_;
  int nodes_;
  Reduce reduce_;
  BoundCnn average_;  // holds the average model for its evaluation
  double average_accuracy_ = 0;
};

/// Runs one node's whole round (and a resynchronisation when one is due): threads and mpi.
template <class Optimizer>
double whole_round(CnnNode& node, Optimizer& optimizer) {
  node.begin_round(optimizer);
  const double loss = node.finish_round(optimizer);
  if (optimizer.resync_due()) {
    node.timed([&] { optimizer.begin_resync(); });
    node.timed([&] { optimizer.finish_resync(); });
  }
  return loss;
}

/// One round of every node in lockstep on a SimulatedNetwork (the sim transport): every node's
/// first half, then every node's second half, then a resynchronisation phase when one is due.
/// Returns the sum of the nodes' losses.
template <class Optimizer>
double lockstep_round(std::vector<std::unique_ptr<CnnNode>>& nodes, std::vector<Optimizer>& optimizers) {
  auto each = [&](auto&& phase) {
    for (std::size_t i = 0; i < nodes.size(); ++i) phase(*nodes[i], optimizers[i]);
  };
  double loss = 0;
  each([](CnnNode& node, Optimizer& o) { node.begin_round(o); });
  each([&](CnnNode& node, Optimizer& o) { loss += node.finish_round(o); });
  if (optimizers[0].resync_due()) {
    each([](CnnNode& node, Optimizer& o) { node.timed([&] { o.begin_resync(); }); });
    each([](CnnNode& node, Optimizer& o) { node.timed([&] { o.finish_resync(); }); });
  }
  return loss;
}

/// The compressor, prox and local update of one algorithm (each node's optimizer gets a copy).
template <class Optimizer>
struct Parts {
  typename Optimizer::Compressor compressor;
  typename Optimizer::Prox prox;
  typename Optimizer::Local local;
};

template <class Optimizer>
TorchRunResult run_with(const TorchTrainConfig& c, const std::string& algorithm, const train::TrainingData& data,
                        const Options& options, const Parts<Optimizer>& parts, const train::ProgressFn& progress) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const Topology topology = train::make_topology(c.train);
  const int n = topology.size();
  const auto shares = examples::partition(data.train.labels, n, examples::parse_partition(c.train.partition), c.train.seed);
  const long rounds_per_epoch = examples::BatchSampler(shares[0], c.train.batch, 0).batches_per_epoch();
  const long total_rounds = train::planned_rounds(c.train, rounds_per_epoch);
  const long eval_every = train::evaluation_interval(c.train, rounds_per_epoch, total_rounds);
  auto is_evaluation = [&](long round) { return round % eval_every == 0 || round == total_rounds; };

  TorchRunResult result;
  result.local = c.local;
  train::RunResult& run = result.run;
  run.algorithm = algorithm;
  run.topology = topology.name();
  run.nodes = n;
  run.rounds = total_rounds;
  for (int i = 0; i < n; ++i) run.link_count += topology.neighbors(i).size();

  // The nodes this process holds: all of them, or this rank's under MPI.
  auto make_nodes = [&](std::vector<int> ranks) {
    std::vector<std::unique_ptr<CnnNode>> nodes;
    for (int i : ranks)
      nodes.push_back(std::make_unique<CnnNode>(
          c, data.train, shares[static_cast<std::size_t>(i)],
          Rng::derive(c.train.seed, {0x62617463ULL /* "batc" */, static_cast<std::uint64_t>(i)}).next()));
    return nodes;
  };
  auto make_optimizer = [&](std::vector<Optimizer>& optimizers, CnnNode& node, TransportRef transport) {
    optimizers.emplace_back(node.parameters(), node.layout(), topology, transport, options, parts.compressor, parts.prox,
                            parts.local);
  };
  double loss_sum = 0;  // Σ over the rounds since the last evaluation and the nodes here of their loss
  auto record = [&](auto& nodes, Evaluator& evaluator, long round, double bytes) {
    const long since = round - (run.rows.empty() ? 0 : run.rows.back().round);
    train::EvalRow row = evaluator.evaluate(nodes, round, rounds_per_epoch, bytes, loss_sum / static_cast<double>(since));
    loss_sum = 0;
    row.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    run.rows.push_back(row);
    result.average_model_accuracy = evaluator.average_model_accuracy();
    return &run.rows.back();
  };
  auto sum_decopt_seconds = [](auto& nodes) {
    double s = 0;
    for (auto& node : nodes) s += node->decopt_seconds();
    return s;
  };
  std::vector<std::vector<float>> models;  // every node's final model, in node order, for the checksum
  auto keep_models = [&](auto& nodes) {
    for (auto& node : nodes) models.emplace_back(node->parameters().begin(), node->parameters().end());
  };
  std::vector<int> everyone(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) everyone[static_cast<std::size_t>(i)] = i;
  const Reduce here = [](std::vector<double> v) { return v; };

  if (c.train.transport == "sim") {
    auto nodes = make_nodes(everyone);
    SimulatedNetwork network(topology, c.train.link_model());
    std::vector<Optimizer> optimizers;
    optimizers.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) make_optimizer(optimizers, *nodes[static_cast<std::size_t>(i)], network.endpoint(i));
    Evaluator evaluator(c, data, n, here);
    for (long t = 0; t < total_rounds; ++t) {
      loss_sum += lockstep_round(nodes, optimizers);
      const train::EvalRow* row = nullptr;
      if (is_evaluation(t + 1)) {
        double bytes = 0;
        for (const auto& o : optimizers) bytes += static_cast<double>(o.totals().bytes_sent);
        row = record(nodes, evaluator, t + 1, bytes);
      }
      if (progress) progress(t + 1, total_rounds, row);
    }
    for (const auto& o : optimizers) run.wait_seconds += o.totals().wait_seconds;
    run.simulated_seconds = network.virtual_time();
    result.decopt_seconds = sum_decopt_seconds(nodes) / n;
    keep_models(nodes);
  } else if (c.train.transport == "threads") {
    auto nodes = make_nodes(everyone);
    ThreadNetwork network(topology, c.train.link_model(),
                          std::chrono::milliseconds(static_cast<long>(c.train.timeout_s * 1000)));
    std::vector<Optimizer> optimizers;
    optimizers.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) make_optimizer(optimizers, *nodes[static_cast<std::size_t>(i)], network.endpoint(i));
    Evaluator evaluator(c, data, n, here);
    std::vector<double> node_loss(static_cast<std::size_t>(n), 0.0);
    for (long t = 0; t < total_rounds;) {
      const long segment_end = std::min(total_rounds, (t / eval_every + 1) * eval_every);
      network.run([&](int r) {
        ::torch::set_num_threads(c.torch_threads);  // LibTorch's thread count is per thread
        const auto i = static_cast<std::size_t>(r);
        for (long s = t; s < segment_end; ++s) node_loss[i] += whole_round(*nodes[i], optimizers[i]);
      });
      for (double& l : node_loss) {
        loss_sum += l;
        l = 0;
      }
      t = segment_end;
      double bytes = 0;
      for (const auto& o : optimizers) bytes += static_cast<double>(o.totals().bytes_sent);
      const train::EvalRow* row = record(nodes, evaluator, t, bytes);
      if (progress) progress(t, total_rounds, row);
    }
    for (const auto& o : optimizers) run.wait_seconds += o.totals().wait_seconds;
    result.decopt_seconds = sum_decopt_seconds(nodes) / n;
    keep_models(nodes);
  } else if (c.train.transport == "mpi") {
#ifdef DECOPT_TRAIN_WITH_MPI
    const MpiOptions mpi = train::mpi_options(c.train);
    MpiTransport transport(topology, MPI_COMM_WORLD, mpi);
    const int me = transport.rank();
    auto nodes = make_nodes({me});
    transport.check_same_dimension(nodes[0]->parameters().size());
    std::vector<Optimizer> optimizers;
    make_optimizer(optimizers, *nodes[0], transport);
    const Reduce over_ranks = [&](std::vector<double> v) {
      return mpi_sum(std::move(v), MPI_COMM_WORLD, mpi, "the other ranks' evaluation");
    };
    Evaluator evaluator(c, data, n, over_ranks);
    for (long t = 0; t < total_rounds; ++t) {
      loss_sum += whole_round(*nodes[0], optimizers[0]);
      const train::EvalRow* row = nullptr;
      if (is_evaluation(t + 1)) row = record(nodes, evaluator, t + 1, static_cast<double>(optimizers[0].totals().bytes_sent));
      if (progress && me == 0) progress(t + 1, total_rounds, row);
    }
    run.wait_seconds = over_ranks({optimizers[0].totals().wait_seconds})[0];
    result.decopt_seconds = over_ranks({nodes[0]->decopt_seconds()})[0] / n;
    const auto x = nodes[0]->parameters();
    const std::vector<float> all = mpi_gather(std::span<const float>(x.data(), x.size()), 0, MPI_COMM_WORLD, mpi,
                                              "the other ranks' models");
    for (int i = 0; i < n && me == 0; ++i)
      models.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(x.size()) * i,
                          all.begin() + static_cast<std::ptrdiff_t>(x.size()) * (i + 1));
#else
    throw ConfigError("this decopt-torch-train was built without MPI (install libopenmpi-dev and rebuild)");
#endif
  } else {
    throw ConfigError("transport '" + c.train.transport + "' is not available in this build of decopt-torch-train");
  }
  run.parameters = static_cast<std::size_t>(BoundCnn(c.train.seed, false).binding.parameters().size());
  if (!models.empty()) run.model_checksum = train::model_checksum(models);
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace detail

/// The optimizers: decopt's named configurations over the node's layout (so the ℓ1 prox applies
/// to the weights only, and --layerwise segments get their own quantizer scale), with the local
/// update `Local` (SGD also for torch-sgd / torch-adam, whose step() is never called).
template <class Step, class Local>
using MalcomCnn = MalcomPSGD<Step, Local>;
template <class Step, class Local>
using ChocoCnn = ChocoSGD<Step, Local>;
template <class Step, class Local>
using DpsgdCnn = DPSGD<Step, Local>;

/// The Options of a run. prox_step is set explicitly (= --lr): exchange() needs it, since decopt
/// does not know the step size of a torch optimizer. Momentum is the local update's (--local).
inline Options run_options(const TorchTrainConfig& c) {
  Options options;
  options.lr = c.train.lr;
  options.consensus_step = c.train.gamma;
  options.local_steps = c.train.local_steps;
  options.seed = c.train.seed;
  options.prox_step = c.train.lr;
  return options;
}

/// The quantizer of --levels and --norm.
inline DitheredQuantizer quantizer_of(const TorchTrainConfig& c) {
  return DitheredQuantizer{c.train.levels, c.train.norm == "l2" ? Norm::L2 : Norm::Linf};
}

/// Malcom-PSGD's compressor and prox: ℓ1 of weight --lambda (on the weights: the layout says so).
template <class Step, class Local>
detail::Parts<MalcomCnn<Step, Local>> malcom_parts(const TorchTrainConfig& c, Local local) {
  return {Compressor<Dense, DitheredQuantizer, VectorSourceCoder>{Dense{}, quantizer_of(c), VectorSourceCoder{}},
          L1Prox{c.train.lambda}, local};
}
/// CHOCO-SGD's: the same quantizer, fixed-width packing, no prox.
template <class Step, class Local>
detail::Parts<ChocoCnn<Step, Local>> choco_parts(const TorchTrainConfig& c, Local local) {
  return {{Dense{}, quantizer_of(c), RawCoder{}}, NoProx{}, local};
}
/// D-PSGD's: float32 messages, no prox.
template <class Step, class Local>
detail::Parts<DpsgdCnn<Step, Local>> dpsgd_parts(const TorchTrainConfig&, Local local) {
  return {{}, {}, local};
}

/// Calls `run(local)` with --local's decopt policy: SGD, HeavyBall{μ}, Nesterov{μ}, Adam, AdamW
/// (PyTorch's defaults); SGD for torch-sgd and torch-adam.
template <class Run>
auto with_local_update(const TorchTrainConfig& c, Run&& run) {
  if (c.local == "momentum") return run(HeavyBall{.momentum = c.train.momentum});
  if (c.local == "nesterov") return run(Nesterov{.momentum = c.train.momentum});
  if (c.local == "adam") return run(Adam{});
  if (c.local == "adamw") return run(AdamW{});
  return run(SGD{});
}

/// Runs `algorithm` (malcom | choco | dpsgd) with the config's step and local update.
inline TorchRunResult run_experiment(const TorchTrainConfig& c, const std::string& algorithm,
                                     const train::TrainingData& data, const train::ProgressFn& progress) {
  const Options options = run_options(c);
  auto dispatch = [&]<class Step, class Local>(Step, Local local) -> TorchRunResult {
    if (algorithm == "malcom")
      return detail::run_with<MalcomCnn<Step, Local>>(c, algorithm, data, options, malcom_parts<Step>(c, local), progress);
    if (algorithm == "choco")
      return detail::run_with<ChocoCnn<Step, Local>>(c, algorithm, data, options, choco_parts<Step>(c, local), progress);
    if (algorithm == "dpsgd")
      return detail::run_with<DpsgdCnn<Step, Local>>(c, algorithm, data, dpsgd_options(options),
                                                     dpsgd_parts<Step>(c, local), progress);
    throw ConfigError("unknown algorithm '" + algorithm + "'");
  };
  return with_local_update(c, [&](auto local) {
    return c.train.step == "overlap" ? dispatch(OverlappedStep{}, local) : dispatch(SyncStep{}, local);
  });
}

}  // namespace decopt::torch_example
