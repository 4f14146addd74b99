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
//
// --checkpoint / --resume (sim and threads) write and read decopt-train's checkpoint file
// (train/checkpoint.hpp: the run's identity and progress, then per node its decopt optimizer's
// record) with each node's own record after its optimizer's (CnnNode::save_state: the torch
// optimizer's state), so a resumed run, on either transport, ends with the same bits as one that
// never stopped.
#pragma once

#include <decopt/decopt.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#ifdef DECOPT_TRAIN_WITH_MPI
#include "train/mpi_run.hpp"
#endif

#include "common/coders.hpp"
#include "fashion/batches.hpp"
#include "fashion/partition.hpp"
#include "torch/cnn.hpp"
#include "torch/config.hpp"
#include "torch/node.hpp"
#include "train/checkpoint.hpp"
#include "train/experiment.hpp"

namespace decopt::torch_example {

/// The outcome of one run: decopt-train's, plus what only this program measures.
struct TorchRunResult {
  train::RunResult run;
  std::string local;
  double average_model_accuracy = 0;  ///< test accuracy of (1/n) Σ_i x_i at the last evaluation
  double decopt_seconds = 0;          ///< wall time inside decopt's calls, mean over nodes (node.hpp)
};

/// decopt-train's RunResult of a run (train/report.hpp's CSV and plot take those).
inline const train::RunResult& train_result(const TorchRunResult& r) { return r.run; }

/// What must match for a checkpoint to continue this run: decopt-train's identity (train/checkpoint.hpp)
/// after this program's own settings, so that a resume with another --local says so first.
inline std::string run_identity(const TorchTrainConfig& c, const std::string& algorithm) {
  return "local=" + c.local + " layerwise=" + (c.layerwise ? "on" : "off") + " torch_threads=" +
         std::to_string(c.torch_threads) + " " + train::run_identity(c.train, algorithm);
}

namespace detail {

/// Sums per-node figures over the processes of the run: the identity for sim and threads (every
/// node is here), an all-reduce under MPI.
using Reduce = std::function<std::vector<double>(std::vector<double>)>;

/// The evaluation of the nodes held here (all of them, or this rank's), completed by `reduce`.
class Evaluator {
 public:
  Evaluator(const TorchTrainConfig& c, const train::TrainingData& data, int nodes, Reduce reduce)
      : config_(c), data_(data), nodes_(nodes), reduce_(std::move(reduce)), average_(c.train.seed, c.layerwise) {}

  /// One evaluation row of `local` (the nodes here), after `round` of `total_rounds` rounds: on
  /// the whole test set at the end, on --eval-samples images before (train::evaluation_samples);
  /// also sets average_model_accuracy(). `bytes_here` and `loss_here` are sums over `local`.
  train::EvalRow evaluate(std::vector<std::unique_ptr<CnnNode>>& local, long round, long total_rounds,
                          long rounds_per_epoch, double bytes_here, double loss_here) {
    train::EvalRow row;
    row.round = round;
    row.epoch = static_cast<double>(round) / static_cast<double>(rounds_per_epoch);
    row.test_samples = train::evaluation_samples(config_.train, data_.test, round == total_rounds);
    const std::size_t d = local.front()->parameters().size();
    std::vector<double> figures(5, 0.0);  // accuracy, loss, sparsity, bytes, training loss
    std::vector<double> sum(d, 0.0);      // Σ_i x_i
    for (auto& node : local) {
      const Evaluation e = torch_example::evaluate(node->net(), data_.test, row.test_samples);
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
    average_accuracy_ = torch_example::evaluate(*average_.net, data_.test, row.test_samples).accuracy;
    return row;
  }

  [[nodiscard]] double average_model_accuracy() const { return average_accuracy_; }

 private:
  const TorchTrainConfig& config_;
  const train::TrainingData& data_;
  int nodes_;
  Reduce reduce_;
  BoundCnn average_;  // holds the average model for its evaluation
  double average_accuracy_ = 0;
};

/// The decopt optimizers of the nodes this process holds, behind virtual calls: the driver
/// (run_nodes) is compiled once, not once per optimizer type (--algorithm × --coder × --step ×
/// --local make 70 of them).
class NodeOptimizers {
 public:
  virtual ~NodeOptimizers() = default;
  /// Adds the optimizer of `node` (the next one, in node order) over its bound buffer.
  virtual void add(CnnNode& node, TransportRef transport) = 0;
  /// The i-th node's whole round (and a resynchronisation when one is due): threads and mpi.
  virtual double whole_round(std::size_t i, CnnNode& node) = 0;
  /// One round of every node in lockstep (the sim transport); the sum of their losses.
  virtual double lockstep_round(std::vector<std::unique_ptr<CnnNode>>& nodes) = 0;
  [[nodiscard]] virtual const RunningTotals& totals(std::size_t i) const = 0;
  virtual void save_state(std::size_t i, std::vector<std::byte>& out) const = 0;
  virtual std::size_t load_state(std::size_t i, std::span<const std::byte> bytes) = 0;
};

/// The compressor, prox and local update of one algorithm (each node's optimizer gets a copy).
template <class Optimizer>
struct Parts {
  typename Optimizer::Compressor compressor;
  typename Optimizer::Prox prox;
  typename Optimizer::Local local;
};

/// NodeOptimizers of one optimizer type.
template <class Optimizer>
class OptimizersOf final : public NodeOptimizers {
 public:
  OptimizersOf(const Topology& topology, const Options& options, const Parts<Optimizer>& parts, std::size_t count)
      : topology_(topology), options_(options), parts_(parts) {
    optimizers_.reserve(count);
  }

  void add(CnnNode& node, TransportRef transport) override {
    optimizers_.emplace_back(node.parameters(), node.layout(), topology_, transport, options_, parts_.compressor,
                             parts_.prox, parts_.local);
  }

  double whole_round(std::size_t i, CnnNode& node) override {
    Optimizer& optimizer = optimizers_[i];
    node.begin_round(optimizer);
    const double loss = node.finish_round(optimizer);
    if (optimizer.resync_due()) {
      node.timed([&] { optimizer.begin_resync(); });
      node.timed([&] { optimizer.finish_resync(); });
    }
    return loss;
  }

  /// Every node's first half, then every node's second half, then a resynchronisation phase when
  /// one is due.
  double lockstep_round(std::vector<std::unique_ptr<CnnNode>>& nodes) override {
    auto each = [&](auto&& phase) {
      for (std::size_t i = 0; i < nodes.size(); ++i) phase(*nodes[i], optimizers_[i]);
    };
    double loss = 0;
    each([](CnnNode& node, Optimizer& o) { node.begin_round(o); });
    each([&](CnnNode& node, Optimizer& o) { loss += node.finish_round(o); });
    if (optimizers_[0].resync_due()) {
      each([](CnnNode& node, Optimizer& o) { node.timed([&] { o.begin_resync(); }); });
      each([](CnnNode& node, Optimizer& o) { node.timed([&] { o.finish_resync(); }); });
    }
    return loss;
  }

  [[nodiscard]] const RunningTotals& totals(std::size_t i) const override { return optimizers_[i].totals(); }
  void save_state(std::size_t i, std::vector<std::byte>& out) const override { optimizers_[i].save_state(out); }
  std::size_t load_state(std::size_t i, std::span<const std::byte> bytes) override {
    return optimizers_[i].load_state(bytes);
  }

 private:
  const Topology& topology_;
  Options options_;
  Parts<Optimizer> parts_;
  std::vector<Optimizer> optimizers_;
};

/// Makes the NodeOptimizers of a run over its topology, for `count` nodes.
using OptimizerFactory = std::function<std::unique_ptr<NodeOptimizers>(const Topology&, std::size_t count)>;

/// One node's part of a checkpoint: its decopt optimizer's record, then its own (CnnNode::save_state).
struct NodeCheckpoint {
  NodeOptimizers& optimizers;
  std::size_t i;
  CnnNode& node;

  void save_state(std::vector<std::byte>& out) const {
    optimizers.save_state(i, out);
    node.save_state(out);
  }
  std::size_t load_state(std::span<const std::byte> bytes) {
    const std::size_t used = optimizers.load_state(i, bytes);
    return used + node.load_state(bytes.subspan(used));
  }
};

/// An evaluation row as a checkpoint stores it: decopt-train's numbers, then the average model's accuracy.
inline std::vector<double> row_numbers(const train::EvalRow& row, double average_accuracy) {
  std::vector<double> numbers = train::row_numbers(row);
  numbers.push_back(average_accuracy);
  return numbers;
}

inline TorchRunResult run_nodes(const TorchTrainConfig& c, const std::string& algorithm, const train::TrainingData& data,
                                const OptimizerFactory& make_optimizers, const train::ProgressFn& progress) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const Topology topology = train::make_topology(c.train);
  const int n = topology.size();
  const auto shares = examples::partition(data.train.labels, n, examples::parse_partition(c.train.partition), c.train.seed);
  const long rounds_per_epoch = examples::BatchSampler(shares[0], c.train.batch, 0).batches_per_epoch();
  const long total_rounds = train::planned_rounds(c.train, rounds_per_epoch);
  const long eval_every = train::evaluation_interval(c.train, rounds_per_epoch, total_rounds);
  auto is_evaluation = [&](long round) { return round % eval_every == 0 || round == total_rounds; };
  // Rounds at which to stop: evaluations, checkpoints and the end.
  auto next_stop = [&](long round) {
    return std::min({total_rounds, (round / eval_every + 1) * eval_every, train::next_checkpoint(c.train, round, total_rounds)});
  };

  TorchRunResult result;
  result.local = c.local;
  train::RunResult& run = result.run;
  run.algorithm = algorithm;
  run.coder = c.train.coder_of(algorithm);
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
  double loss_sum = 0;         // Σ over the rounds since the last evaluation and the nodes here of their loss
  double seconds_before = 0;   // run time before a resume
  std::vector<double> averages;  // the average model's accuracy at each evaluation of run.rows
  auto elapsed = [&] { return seconds_before + std::chrono::duration<double>(Clock::now() - start).count(); };
  auto last_evaluated = [&] { return run.rows.empty() ? 0L : run.rows.back().round; };
  auto record = [&](auto& nodes, Evaluator& evaluator, long round, double bytes, double simulated_seconds) {
    train::EvalRow row = evaluator.evaluate(nodes, round, total_rounds, rounds_per_epoch, bytes,
                                            loss_sum / static_cast<double>(round - last_evaluated()));
    loss_sum = 0;
    row.seconds = elapsed();
    row.simulated_seconds = simulated_seconds;
    run.rows.push_back(row);
    averages.push_back(evaluator.average_model_accuracy());
    return &run.rows.back();
  };
  auto sum_bytes = [&](const NodeOptimizers& optimizers, std::size_t count) {
    double bytes = 0;
    for (std::size_t i = 0; i < count; ++i) bytes += static_cast<double>(optimizers.totals(i).bytes_sent);
    return bytes;
  };
  const std::string identity = run_identity(c, algorithm);
  auto node_at = [](NodeOptimizers& optimizers, std::vector<std::unique_ptr<CnnNode>>& nodes) {
    return [&](int i) { return NodeCheckpoint{optimizers, static_cast<std::size_t>(i), *nodes[static_cast<std::size_t>(i)]}; };
  };
  // Saves the run after `round` rounds (sim and threads: every node is here).
  auto save = [&](long round, NodeOptimizers& optimizers, std::vector<std::unique_ptr<CnnNode>>& nodes) {
    train::RunProgress p;
    p.rounds_done = round;
    p.seconds = elapsed();
    p.loss_sum = loss_sum;
    p.loss_count = round - last_evaluated();
    for (auto& node : nodes) p.samplers.emplace_back(node->sampler().epoch(), node->sampler().position());
    for (std::size_t r = 0; r < run.rows.size(); ++r) p.rows.push_back(row_numbers(run.rows[r], averages[r]));
    train::write_checkpoint(c.train.checkpoint, identity, p, n, node_at(optimizers, nodes));
  };
  // Restores a saved run; returns the rounds already done.
  auto resume = [&](NodeOptimizers& optimizers, std::vector<std::unique_ptr<CnnNode>>& nodes) -> long {
    if (c.train.resume.empty()) return 0;
    const train::RunProgress p = train::read_checkpoint(c.train.resume, identity, n, total_rounds, node_at(optimizers, nodes));
    decopt::detail::require_decodable(p.noise_states.empty(), "the checkpoint holds noise streams, which this program has not");
    for (std::size_t i = 0; i < nodes.size(); ++i) nodes[i]->sampler().seek(p.samplers[i].first, p.samplers[i].second);
    for (const auto& numbers : p.rows) {
      decopt::detail::require_decodable(numbers.size() == 12, "checkpoint evaluation row of the wrong width");
      run.rows.push_back(train::row_from_numbers({numbers.begin(), numbers.end() - 1}));
      averages.push_back(numbers.back());
    }
    decopt::detail::require_decodable(p.loss_count == p.rounds_done - last_evaluated(), "checkpoint loss count out of range");
    loss_sum = p.loss_sum;
    seconds_before = p.seconds;
    return p.rounds_done;
  };
  auto after_stop = [&](long round, auto& nodes, Evaluator& evaluator, NodeOptimizers& optimizers, double simulated) {
    const train::EvalRow* row =
        is_evaluation(round) ? record(nodes, evaluator, round, sum_bytes(optimizers, nodes.size()), simulated) : nullptr;
    if (train::checkpoint_due(c.train, round, total_rounds)) save(round, optimizers, nodes);
    if (progress) progress(round, total_rounds, row);
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
  const auto count = static_cast<std::size_t>(n);

  if (c.train.transport == "sim") {
    auto nodes = make_nodes(everyone);
    SimulatedNetwork network(topology, c.train.link_model());
    const auto optimizers = make_optimizers(topology, count);
    for (int i = 0; i < n; ++i) optimizers->add(*nodes[static_cast<std::size_t>(i)], network.endpoint(i));
    Evaluator evaluator(c, data, n, here);
    for (long t = resume(*optimizers, nodes); t < total_rounds; ++t) {
      loss_sum += optimizers->lockstep_round(nodes);
      if (t + 1 == next_stop(t)) after_stop(t + 1, nodes, evaluator, *optimizers, network.virtual_time());
      else if (progress) progress(t + 1, total_rounds, nullptr);
    }
    for (std::size_t i = 0; i < count; ++i) run.wait_seconds += optimizers->totals(i).wait_seconds;
    run.simulated_seconds = network.virtual_time();
    result.decopt_seconds = sum_decopt_seconds(nodes) / n;
    keep_models(nodes);
  } else if (c.train.transport == "threads") {
    auto nodes = make_nodes(everyone);
    ThreadNetwork network(topology, c.train.link_model(),
                          std::chrono::milliseconds(static_cast<long>(c.train.timeout_s * 1000)));
    const auto optimizers = make_optimizers(topology, count);
    for (int i = 0; i < n; ++i) optimizers->add(*nodes[static_cast<std::size_t>(i)], network.endpoint(i));
    Evaluator evaluator(c, data, n, here);
    std::vector<double> node_loss(count, 0.0);
    for (long t = resume(*optimizers, nodes); t < total_rounds;) {
      const long segment_end = next_stop(t);
      network.run([&](int r) {
        ::torch::set_num_threads(c.torch_threads);  // LibTorch's thread count is per thread
        const auto i = static_cast<std::size_t>(r);
        for (long s = t; s < segment_end; ++s) node_loss[i] += optimizers->whole_round(i, *nodes[i]);
      });
      for (double& l : node_loss) {
        loss_sum += l;
        l = 0;
      }
      t = segment_end;
      after_stop(t, nodes, evaluator, *optimizers, std::nan(""));
    }
    for (std::size_t i = 0; i < count; ++i) run.wait_seconds += optimizers->totals(i).wait_seconds;
    result.decopt_seconds = sum_decopt_seconds(nodes) / n;
    keep_models(nodes);
  } else if (c.train.transport == "mpi") {
#ifdef DECOPT_TRAIN_WITH_MPI
    const MpiOptions mpi = train::mpi_options(c.train);
    MpiTransport transport(topology, MPI_COMM_WORLD, mpi);
    const int me = transport.rank();
    auto nodes = make_nodes({me});
    transport.check_same_dimension(nodes[0]->parameters().size());
    const auto optimizers = make_optimizers(topology, 1);
    optimizers->add(*nodes[0], transport);
    const Reduce over_ranks = [&](std::vector<double> v) {
      return mpi_sum(std::move(v), MPI_COMM_WORLD, mpi, "the other ranks' evaluation");
    };
    Evaluator evaluator(c, data, n, over_ranks);
    for (long t = 0; t < total_rounds; ++t) {
      loss_sum += optimizers->whole_round(0, *nodes[0]);
      const train::EvalRow* row = nullptr;
      if (is_evaluation(t + 1)) row = record(nodes, evaluator, t + 1, sum_bytes(*optimizers, 1), std::nan(""));
      if (progress && me == 0) progress(t + 1, total_rounds, row);
    }
    run.wait_seconds = over_ranks({optimizers->totals(0).wait_seconds})[0];
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
  result.average_model_accuracy = averages.empty() ? std::nan("") : averages.back();
  run.parameters = static_cast<std::size_t>(BoundCnn(c.train.seed, false).binding.parameters().size());
  if (!models.empty()) run.model_checksum = train::model_checksum(models);
  run.seconds = elapsed();
  return result;
}

/// The OptimizerFactory of `Optimizer` with these options and parts.
template <class Optimizer>
OptimizerFactory factory_of(const Options& options, const Parts<Optimizer>& parts) {
  return [options, parts](const Topology& topology, std::size_t count) -> std::unique_ptr<NodeOptimizers> {
    return std::make_unique<OptimizersOf<Optimizer>>(topology, options, parts, count);
  };
}

}  // namespace detail

/// The optimizers: decopt's configurations over the node's layout (so the ℓ1 prox applies to the
/// weights only, and --layerwise segments get their own quantizer scale), with the level coder
/// `Coder` (--coder) and the local update `Local` (SGD also for torch-sgd / torch-adam, whose
/// step() is never called). Malcom-PSGD and CHOCO-SGD differ in the prox, the default coder and
/// Malcom's support coding (SupportCoded: the zeros of the ℓ1 prox cost no bits).
template <class Coder, class Step, class Local>
using MalcomCnn = DecentralizedOptimizer<SupportCoded<Compressor<Dense, DitheredQuantizer, Coder>>, L1Prox, Step, Local>;
template <class Coder, class Step, class Local>
using ChocoCnn = DecentralizedOptimizer<Compressor<Dense, DitheredQuantizer, Coder>, NoProx, Step, Local>;
template <class Step, class Local>
using DpsgdCnn = DPSGD<Step, Local>;
/// --compressor topk (malcom: ℓ1 of --lambda; choco: λ = 0): the ⌈ρd⌉ largest residuals as float32,
/// their positions VSC-coded, synchronous step only (config.hpp's check_compressor).
template <class Local>
using TopKCnn = DecentralizedOptimizer<Compressor<TopK, Identity, VectorSourceCoder>, L1Prox, SyncStep, Local>;

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

/// The quantizer of --levels, --norm and --bucket.
inline DitheredQuantizer quantizer_of(const TorchTrainConfig& c) {
  return DitheredQuantizer{c.train.levels, c.train.norm == "l2" ? Norm::L2 : Norm::Linf, false,
                           static_cast<std::size_t>(c.train.bucket)};
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

/// Runs `algorithm` (malcom | choco | dpsgd) with the config's step, local update and coder
/// (TrainConfig::coder_of: vsc for malcom, raw for choco by default). Instantiated: malcom and
/// choco with each of the three coders, dpsgd with RawCoder only, for both steps and the five
/// local updates, and --compressor topk (sync) for the five — 75 optimizer types, but only their
/// OptimizersOf (detail): the driver is one.
/// @throws ConfigError for an unknown algorithm or coder, or elias/vsc with dpsgd
inline TorchRunResult run_experiment(const TorchTrainConfig& c, const std::string& algorithm,
                                     const train::TrainingData& data, const train::ProgressFn& progress) {
  const Options options = run_options(c);
  const std::string coder = c.train.coder_of(algorithm);
  auto run = [&]<class Optimizer>(const Options& o, const detail::Parts<Optimizer>& parts) {
    return detail::run_nodes(c, algorithm, data, detail::factory_of(o, parts), progress);
  };
  // Malcom-PSGD (ℓ1 of weight --lambda, on the weights: the layout says so) or CHOCO-SGD (no
  // prox), both with the quantizer of --levels, --norm and --bucket and the level coder Coder;
  // Malcom's support keeps a weight until the prox left it at 0 for --support-patience rounds.
  auto quantized = [&]<class Step, class Local, class Coder>(Step, Local local, Coder level_coder) -> TorchRunResult {
    const Compressor<Dense, DitheredQuantizer, Coder> compressor{Dense{}, quantizer_of(c), level_coder};
    if (algorithm == "malcom") {
      SupportCoded<Compressor<Dense, DitheredQuantizer, Coder>> support(compressor);
      support.set_patience(static_cast<unsigned>(c.train.support_patience));
      return run(options, detail::Parts<MalcomCnn<Coder, Step, Local>>{support, L1Prox{c.train.lambda}, local});
    }
    return run(options, detail::Parts<ChocoCnn<Coder, Step, Local>>{compressor, NoProx{}, local});
  };
  auto dispatch = [&]<class Step, class Local>(Step step, Local local) -> TorchRunResult {
    if (algorithm == "dpsgd") {
      decopt::detail::require(coder == "raw", "--coder " + coder + " does not apply to dpsgd (it sends raw float32 values)");
      return run(dpsgd_options(options), detail::Parts<DpsgdCnn<Step, Local>>{{}, {}, local});
    }
    if (algorithm != "malcom" && algorithm != "choco") throw ConfigError("unknown algorithm '" + algorithm + "'");
    if (c.train.compressor_of(algorithm) == "topk") {
      const Compressor<TopK, Identity, VectorSourceCoder> top_k(TopK{c.train.ratio}, {}, {});
      const L1Prox prox{algorithm == "malcom" ? c.train.lambda : 0.0};
      return run(options, detail::Parts<TopKCnn<Local>>{top_k, prox, local});
    }
    return examples::with_level_coder(coder, [&](auto level_coder) { return quantized(step, local, level_coder); });
  };
  return with_local_update(c, [&](auto local) {
    return c.train.step == "overlap" ? dispatch(OverlappedStep{}, local) : dispatch(SyncStep{}, local);
  });
}

}  // namespace decopt::torch_example
