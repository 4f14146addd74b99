// train/experiment.hpp — one decentralized training run of the Fashion-MNIST MLP: the data split
// over the nodes, an optimizer per node over that node's own model buffer, rounds on the chosen
// transport, and an evaluation every --eval-every rounds (test accuracy of every node's own model).
#pragma once

#include <algorithm>
#include <decopt/decopt.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#ifdef DECOPT_TRAIN_WITH_MPI
#include "train/mpi_run.hpp"
#endif

#include "common/coders.hpp"
#include "common/flags.hpp"
#include "common/output.hpp"
#include "fashion/batches.hpp"
#include "fashion/dataset.hpp"
#include "fashion/idx.hpp"
#include "fashion/mlp.hpp"
#include "fashion/partition.hpp"
#include "train/async_run.hpp"
#include "train/checkpoint.hpp"
#include "train/config.hpp"
#include "train/push_sum_flags.hpp"
#include "train/support_log.hpp"

namespace decopt::train {

/// Training and test sets, standardised with the training set's mean and deviation.
struct TrainingData {
  examples::Dataset train;
  examples::Dataset test;
};

inline TrainingData load_data(const TrainConfig& c) {
  TrainingData data{examples::load_fashion_mnist(c.data_dir, true), examples::load_fashion_mnist(c.data_dir, false)};
  if (c.train_samples > 0 && c.train_samples < data.train.size()) {
    data.train.images.conservativeResize(Eigen::NoChange, c.train_samples);
    data.train.labels.resize(static_cast<std::size_t>(c.train_samples));
  }
  const auto norm = examples::compute_normalization(data.train);
  examples::normalize(data.train, norm);
  examples::normalize(data.test, norm);
  return data;
}

/// One evaluation point of a run.
struct EvalRow {
  long round = 0;
  double epoch = 0;
  std::uint64_t bytes_sent = 0;  ///< all nodes, every copy to every neighbour
  double test_accuracy = 0;      ///< mean over nodes of each node's own model
  double test_loss = 0;
  double train_loss = 0;         ///< mean mini-batch loss since the previous evaluation
  double sparsity = 0;           ///< mean over nodes of the fraction of exactly-zero parameters
  double consensus_distance = 0; ///< (1/n) Σ_i ‖x_i − x̄‖²
  double seconds = 0;
  long test_samples = 0;          ///< test images the accuracy and loss were measured on
  double simulated_seconds = std::nan("");  ///< virtual time of the sim transport (NaN on the others)
};

inline std::vector<double> row_numbers(const EvalRow& r) {
  return {static_cast<double>(r.round), r.epoch, static_cast<double>(r.bytes_sent), r.test_accuracy, r.test_loss,
          r.train_loss, r.sparsity, r.consensus_distance, r.seconds, static_cast<double>(r.test_samples),
          r.simulated_seconds};
}
inline EvalRow row_from_numbers(const std::vector<double>& v) {
  decopt::detail::require_decodable(v.size() == 11, "checkpoint evaluation row of the wrong width");
  return {static_cast<long>(v[0]), v[1], static_cast<std::uint64_t>(v[2]), v[3], v[4], v[5], v[6], v[7], v[8],
          static_cast<long>(v[9]), v[10]};
}

/// The test images of an evaluation: the whole test set for the last one (the run's reported
/// accuracy), the first TrainConfig::intermediate_eval_samples() for the others. Evaluating 8
/// models on all 10 000 images 20 times would cost more than the demo's training.
inline long evaluation_samples(const TrainConfig& c, const examples::Dataset& test, bool last) {
  const long subset = c.intermediate_eval_samples();
  return last || subset <= 0 || subset >= test.size() ? static_cast<long>(test.size()) : subset;
}
inline Eigen::Ref<const Eigen::MatrixXf> evaluation_images(const TrainConfig& c, const examples::Dataset& test, bool last) {
  return test.images.leftCols(evaluation_samples(c, test, last));
}
inline std::span<const std::uint8_t> evaluation_labels(const TrainConfig& c, const examples::Dataset& test, bool last) {
  return std::span<const std::uint8_t>(test.labels).first(static_cast<std::size_t>(evaluation_samples(c, test, last)));
}

/// The outcome of one run.
struct RunResult {
  std::string algorithm;
  std::string coder;  ///< raw | elias | vsc (TrainConfig::coder_of)
  std::string topology;
  int nodes = 0;
  long rounds = 0;
  std::size_t parameters = 0;
  std::uint64_t link_count = 0;  ///< Σ_i deg_i: messages sent per round on a static graph
  /// A time-varying schedule: the messages all nodes post in round t are
  /// links_per_round[t mod period] = Σ_i |N_t(i)| (n on one-peer exponential); empty: link_count
  std::vector<std::uint64_t> links_per_round;
  std::string schedule = "static";  ///< --schedule
  bool support_coding = false;      ///< malcom over SupportCoded (false: its plain pipeline, on a schedule)
  bool gradient_tracking = false;   ///< GradientTracking: --algorithm gt or --gradient-tracking
  std::vector<EvalRow> rows;
  std::uint64_t model_checksum = 0;
  double seconds = 0;
  double wait_seconds = 0;  ///< summed over nodes
  double simulated_seconds = 0;  ///< sim transport: virtual time under the link model (compute + modelled communication)
  double average_model_accuracy = std::nan("");  ///< test accuracy of (1/n) Σ_i x_i on the whole test set at the end
  double sent_sparsity = std::nan("");  ///< support coding: mean over nodes of the fraction off the sent support at the end
  /// sim transport: max over nodes and coordinates of |s − Σ_j w_ij x̂_j| at the end, s recomputed from
  /// every node's x̂ (Simulation::neighbor_sum_error): rounding only when x̂ is the same on every node
  double neighbor_sum_error = std::nan("");
  /// --slow-node: (its compute + injected delay) per gradient over the others' compute per gradient
  double slow_compute_ratio = std::nan("");
  std::vector<long> gradient_steps;  ///< --step async: gradients applied by each node
  /// Per evaluation row (sim and threads): the seconds spent evaluating up to and including it,
  /// so row.seconds − evaluation_seconds[i] is the training time (JSON training_seconds_to_target)
  std::vector<double> evaluation_seconds;
  AsyncStats async_bounds;           ///< --step async: the largest lag, gradient age and queue over the nodes
  double dp_noise = 0;      ///< σ used (0 without differential privacy)
  double dp_epsilon = 0;    ///< ε of each node's (ε, δ) guarantee for the whole run
  std::vector<LostPeer> lost_nodes;  ///< nodes that stopped (--fail-node), with the optimizer round
  /// --algorithm sgp (push_sum_run.hpp): bytes of one share message (8 + 4d), and the smallest and
  /// largest push-sum weight w_i over the nodes at the end (0 and NaN for the other algorithms)
  std::uint64_t push_sum_message_bytes = 0;
  double push_sum_weight_min = std::nan(""), push_sum_weight_max = std::nan("");

  [[nodiscard]] const EvalRow& last() const { return rows.back(); }
  /// Messages posted by all nodes in rounds [first, end): Σ_t links_per_round[t mod period].
  [[nodiscard]] std::uint64_t messages_between(long first, long end) const {
    if (end <= first) return 0;
    if (links_per_round.empty()) return link_count * static_cast<std::uint64_t>(end - first);
    const auto period = static_cast<long>(links_per_round.size());
    std::uint64_t per_period = 0;
    for (std::uint64_t links : links_per_round) per_period += links;
    std::uint64_t total = per_period * static_cast<std::uint64_t>((end - first) / period);
    for (long t = first + (end - first) / period * period; t < end; ++t) total += links_per_round[static_cast<std::size_t>(t % period)];
    return total;
  }
  /// Every message of the run (JSON messages_sent).
  [[nodiscard]] std::uint64_t messages_sent() const { return messages_between(0, rounds); }
  /// Bits per parameter per message: 8·bytes / (messages · d), messages = Σ_t Σ_i |N_t(i)| (on a
  /// static graph rounds · Σ_i deg_i) — the size of one message in bits per parameter (32 for
  /// uncompressed float32).
  [[nodiscard]] double bits_per_param_per_round() const { return bits_per_link_param(last().bytes_sent, 0, rounds); }
  /// Bits per parameter per link per round between evaluation `i` − 1 (or the start) and `i`:
  /// the message size over that stretch of the run, as bits_per_param_per_round is over all of it.
  [[nodiscard]] double interval_bits_per_param(std::size_t i) const {
    const EvalRow& row = rows.at(i);
    const long first_round = i == 0 ? 0 : rows[i - 1].round;
    const std::uint64_t first_bytes = i == 0 ? 0 : rows[i - 1].bytes_sent;
    return bits_per_link_param(row.bytes_sent - first_bytes, first_round, row.round);
  }
  /// 8·bytes / (messages of rounds [first, end) · d); 0 when nothing can have been sent (no
  /// rounds, or one node with no links).
  [[nodiscard]] double bits_per_link_param(std::uint64_t bytes, long first, long end) const {
    const std::uint64_t messages = messages_between(first, end);
    return messages == 0 || parameters == 0
               ? 0.0
               : 8.0 * static_cast<double>(bytes) / (static_cast<double>(messages) * static_cast<double>(parameters));
  }
  /// The first evaluation at which the mean test accuracy is at least `accuracy`, or null.
  [[nodiscard]] const EvalRow* first_reaching(double accuracy) const {
    for (const auto& row : rows)
      if (row.test_accuracy >= accuracy) return &row;
    return nullptr;
  }
};

/// FNV-1a over the bits of every node's model, in node order: equal iff the models are bit-identical.
inline std::uint64_t model_checksum(std::span<const std::vector<float>> models) {
  std::uint64_t h = checkpoint::kFnvOffsetBasis;
  for (const auto& m : models) h = checkpoint::fnv1a64(std::as_bytes(std::span<const float>(m)), h);
  return h;
}

/// The nodes' average model (1/n) Σ_i x_i, summed in double in node order (the same bits every run).
inline std::vector<float> average_model(const std::vector<std::vector<float>>& models) {
  std::vector<double> sum(models.front().size(), 0.0);
  for (const auto& m : models)
    for (std::size_t k = 0; k < m.size(); ++k) sum[k] += m[k];
  std::vector<float> average(sum.size());
  for (std::size_t k = 0; k < sum.size(); ++k) average[k] = static_cast<float>(sum[k] / static_cast<double>(models.size()));
  return average;
}

/// Rounds per pass over a node's data: a round draws --local-steps batches, so ⌈batches / τ⌉ (it
/// was the batch count, which made --epochs E pass over the data τ·E times under local steps).
inline long rounds_per_epoch(long batches_per_epoch, int local_steps) {
  return (batches_per_epoch + local_steps - 1) / local_steps;
}

/// The l1 schedule's factor of --lambda in round `round` (0-based), at epoch e = round / rounds per
/// epoch: 0 while e < --lambda-warmup W, (e − W) / R while W ≤ e < W + R (R = --lambda-ramp), then 1.
inline double lambda_factor(const TrainConfig& c, long round, long rounds_per_epoch) {
  const double epoch = static_cast<double>(round) / static_cast<double>(rounds_per_epoch);
  if (epoch < c.lambda_warmup) return 0.0;
  if (c.lambda_ramp <= 0 || epoch >= c.lambda_warmup + c.lambda_ramp) return 1.0;
  return (epoch - c.lambda_warmup) / c.lambda_ramp;
}

/// The rounds of the run: --rounds, else --epochs × rounds per epoch, rounded up.
/// @throws ConfigError when that is not in [1, kMaxRounds] (an --epochs of NaN or 1e300 was once
///   cast to long — undefined — and made an empty run).
inline long planned_rounds(const TrainConfig& c, long rounds_per_epoch) {
  const std::string limit = "; a run has 1 to " + std::to_string(kMaxRounds) + " rounds";
  if (c.rounds != 0) {
    decopt::detail::require(c.rounds >= 1 && c.rounds <= kMaxRounds, "--rounds " + std::to_string(c.rounds) + limit);
    return c.rounds;
  }
  const double rounds = std::ceil(c.epochs * static_cast<double>(rounds_per_epoch));
  decopt::detail::require(rounds >= 1 && rounds <= static_cast<double>(kMaxRounds),
                          "--epochs " + examples::flags::number(c.epochs) + " at " + std::to_string(rounds_per_epoch) +
                              " rounds per epoch makes " + examples::flags::number(rounds) + " rounds" + limit);
  return static_cast<long>(rounds);
}

/// Rounds between evaluations: --eval-every, else ⌊rounds / --evals⌋ (at least 1), so that a run
/// records at least --evals evaluations (fewer only when it has fewer rounds), the last at its end.
/// (Once per epoch gave the demo two points per curve.)
/// @param rounds_per_epoch not used since --evals decides the default; kept for the callers
/// @throws ConfigError when the run would record more than kMaxEvaluations evaluations.
inline long evaluation_interval(const TrainConfig& c, [[maybe_unused]] long rounds_per_epoch, long total_rounds) {
  const long every = c.eval_every > 0 ? c.eval_every : std::max(1L, total_rounds / std::max(1L, c.evals));
  const long evaluations = total_rounds / every + (total_rounds % every != 0);
  decopt::detail::require(evaluations <= kMaxEvaluations,
                          std::to_string(total_rounds) + " rounds with an evaluation every " + std::to_string(every) +
                              " make " + std::to_string(evaluations) + " evaluations, more than the " +
                              std::to_string(kMaxEvaluations) + " a run records (raise --eval-every or lower --evals)");
  return every;
}

/// Pixels per Fashion-MNIST image, the MLP's inputs.
inline constexpr int kFashionMnistFeatures = 28 * 28;
/// Float buffers of the model's size each node holds, at most: its model, x̂, s, momentum, the
/// gradient and reconstruction scratch, its outgoing message and a decoded incoming one.
inline constexpr double kModelBuffersPerNode = 8;
/// Fashion-MNIST's 70 000 images while loading: bytes as decoded, then floats.
inline constexpr double kDataBytes = 70'000.0 * kFashionMnistFeatures * (1 + sizeof(float));

/// P, the parameters of one node's model (the MLP 784 → --hidden → 10).
inline std::size_t model_parameters(const TrainConfig& c) {
  return examples::Mlp(kFashionMnistFeatures, c.hidden, 10).parameter_count();
}

/// Bytes a run of `c` allocates, roughly: per node kModelBuffersPerNode models, the batch and the
/// MLP's workspace, and under differential privacy the P × B per-sample gradients; plus the data.
/// A double: for absurd flags the product exceeds 2^64.
inline double estimated_memory_bytes(const TrainConfig& c) {
  const double parameters = static_cast<double>(model_parameters(c));
  const double batch = c.batch;
  double per_node = sizeof(float) * (kModelBuffersPerNode * parameters + batch * (kFashionMnistFeatures + 3.0 * c.hidden + 30));
  if (c.dp.enabled()) per_node += sizeof(float) * parameters * batch;
  return kDataBytes + c.nodes * per_node;
}

/// --fail-node / --fail-round / --on-lost-peer: both or neither, a node of the run, sim or threads,
/// no checkpoints (a repaired network is not checkpointed) and no --schedule.
inline void check_lost_peer_flags(const TrainConfig& c) {
  const bool injected = c.fail_node >= 0 || c.fail_round >= 0;
  if (!injected && c.on_lost_peer == "fail") return;
  if (injected) {
    detail::require(c.fail_node >= 0 && c.fail_round >= 0, "--fail-node and --fail-round go together");
    detail::require(c.fail_node < c.nodes, "--fail-node " + std::to_string(c.fail_node) + " is not a node of --nodes " +
                                               std::to_string(c.nodes));
    detail::require(c.transport == "sim" || c.transport == "threads",
                    "--fail-node injects the failure in the sim or threads transport; under mpi stop or kill a rank instead");
  }
  detail::require(c.checkpoint.empty() && c.resume.empty(), "--checkpoint/--resume do not apply to runs with a lost peer");
  detail::require(c.on_lost_peer == "fail" || c.schedule == "static" || c.schedule.empty(),
                  "--on-lost-peer drop does not apply to a --schedule");
  // the repair of s after a loss is DecentralizedOptimizer's (lost_peer_repair.hpp)
  const auto algorithms = c.algorithms();
  const bool tracking = c.gradient_tracking || std::find(algorithms.begin(), algorithms.end(), "gt") != algorithms.end();
  detail::require(!tracking, "--fail-node / --on-lost-peer drop do not apply to gradient tracking (no lost-peer repair of its tracker)");
  detail::require(c.step != "async", "--fail-node / --on-lost-peer drop do not apply to --step async");
}

/// --lr-schedule / --lr-min: --lr-min belongs to cosine and lies below --lr; the asynchronous step
/// applies gradients out of round order, so it keeps one learning rate.
inline void check_lr_schedule(const TrainConfig& c) {
  if (c.lr_schedule == "constant") {
    detail::require(c.lr_min == 0, "--lr-min is where --lr-schedule cosine ends; it does not apply to --lr-schedule constant");
    return;
  }
  detail::require(c.lr_min < c.lr, "--lr-min " + detail::format_double(c.lr_min) + " must be below --lr " + detail::format_double(c.lr));
  detail::require(c.step != "async", "--lr-schedule cosine does not apply to --step async (its gradients are applied out of round order)");
}

/// Everything about the run that can be refused before the data is loaded: a topology that does
/// not fit the node count, --checkpoint with --compare, the privacy settings, and a run that would
/// not fit in memory (refused with the figure and the flags that make it large, not with a
/// std::bad_alloc minutes later).
inline void check_run(const TrainConfig& c) {
  if (directed_topology(c)) {
    (void)make_directed_graph(c);  // sgp (push_sum_flags.hpp): no undirected topology, no schedule
  } else {
    (void)make_topology(c);
    check_schedule(c);
  }
  check_checkpoint_flags(c);
  check_async(c);
  if (c.step_seconds > 0 && c.transport != "sim")
    throw ConfigError("--step-seconds sets the simulated clock: it needs --transport sim, not " + c.transport);
  check_lost_peer_flags(c);
  check_lr_schedule(c);
  if (!c.support_log.empty() && c.transport != "sim")
    throw ConfigError("--support-log reads every node's support coding each round: it needs --transport sim, not " + c.transport);
  c.dp.validate();
  examples::flags::require_memory(estimated_memory_bytes(c),
                                  "--nodes " + std::to_string(c.nodes) + " x --hidden " + std::to_string(c.hidden) + " (" +
                                      std::to_string(model_parameters(c)) + " parameters per model" +
                                      (c.dp.enabled() ? ", x --batch " + std::to_string(c.batch) + " per-sample gradients" : "") +
                                      ")");
}

/// Called after every round with (round, total rounds, last evaluation or null).
using ProgressFn = std::function<void(long, long, const EvalRow*)>;

namespace detail {

/// What each node needs to compute its gradients: its data share, sampler and batch buffers.
struct NodeWorker {
  examples::Mlp model;
  examples::BatchSampler sampler;
  Eigen::MatrixXf batch_x;
  std::vector<std::uint8_t> batch_y;

  NodeWorker(const examples::Mlp& m, std::vector<int> indices, int batch, std::uint64_t seed, int features)
      : model(m), sampler(std::move(indices), batch, seed), batch_x(features, batch), batch_y(static_cast<std::size_t>(batch)) {}

  std::optional<PrivateGradient> private_gradient;  ///< set when differential privacy is on

  double gradient(const examples::Dataset& train, std::span<const float> x, std::span<float> g) {
    sampler.next(train, batch_x, batch_y);
    if (private_gradient) return (*private_gradient)(x, batch_x, batch_y, g);
    return model.loss_and_gradient(x, batch_x, batch_y, g);
  }
};

/// Every node's x⁰: one model from c.seed, the same on every node, as the algorithms assume.
inline std::vector<std::vector<float>> initial_models(const TrainConfig& c, const examples::Mlp& mlp, int n) {
  std::vector<std::vector<float>> models(static_cast<std::size_t>(n), std::vector<float>(mlp.parameter_count()));
  Rng init = Rng::derive(c.seed, {0x696e6974ULL /* "init" */});
  mlp.initialize(std::span<float>(models[0]), init);
  for (auto& m : models) m = models[0];
  return models;
}

/// One worker per share of the training data, node i with its own batch stream from c.seed.
inline std::vector<NodeWorker> make_workers(const TrainConfig& c, const examples::Mlp& mlp, const TrainingData& data,
                                            const std::vector<std::vector<int>>& shares) {
  std::vector<NodeWorker> workers;
  workers.reserve(shares.size());
  for (std::size_t i = 0; i < shares.size(); ++i)
    workers.emplace_back(mlp, shares[i], c.batch, Rng::derive(c.seed, {0x62617463ULL /* "batc" */, i}).next(),
                         data.train.features());
  return workers;
}

/// The MLP's four tensors as a ParameterLayout over its packed buffer (alignment 1): W1 and W2 are
/// stored column-major (h × n and c × h), i.e. row-major n × h and h × c, the shapes declared here
/// (a low-rank compressor sees each matrix or its transpose: the same rank).
inline ParameterLayout mlp_layout(const examples::Mlp& mlp) {
  const std::int64_t n = mlp.inputs(), h = mlp.hidden(), classes = mlp.classes();
  ParameterLayout layout(1);
  layout.add("W1", {n, h}).add("b1", {h}, {.prox = false}).add("W2", {h, classes}).add("b2", {classes}, {.prox = false});
  const auto& s = layout.segments();
  decopt::detail::require(s[1].offset == mlp.b1_offset() && s[2].offset == mlp.w2_offset() &&
                              s[3].offset == mlp.b2_offset() && layout.size() == mlp.parameter_count(),
                          "mlp_layout: the layout does not match the MLP's buffer");
  return layout;
}

/// Whether `Optimizer` gossips over a TopologySchedule (--schedule other than static).
template <class Optimizer>
concept follows_schedule = requires { typename Optimizer::Step; } &&
                           (std::is_same_v<typename Optimizer::Step, ScheduledSyncStep> ||
                            std::is_same_v<typename Optimizer::Step, ScheduledOverlappedStep>);

/// Whether `Optimizer` is an asynchronous node (--step async: AsyncGossip).
template <class Optimizer>
concept gossips_asynchronously = requires(Optimizer& o) { o.gradient_due(); };

/// Trains with `Optimizer`; over the MLP's ParameterLayout (the layout constructor) when
/// `with_layout` (compressors that need the shapes: PowerSGD).
template <class Optimizer>
RunResult run_with(const TrainConfig& c, const std::string& algorithm, const TrainingData& data, Options options,
                   typename Optimizer::Compressor compressor, typename Optimizer::Prox prox, const ProgressFn& progress,
                   bool with_layout = false) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const Topology topology = make_topology(c);
  // A scheduled step gossips over --schedule; its network is built on the schedule's transport
  // graph (the union of its rounds), its nodes over the schedule itself.
  std::optional<TopologySchedule> schedule;
  if constexpr (follows_schedule<Optimizer>) schedule.emplace(make_schedule(c));
  const Topology& network_graph = schedule ? schedule->transport_graph() : topology;
  const auto& graph = [&]() -> const auto& {
    if constexpr (follows_schedule<Optimizer>)
      return *schedule;
    else
      return topology;
  }();
  const int n = network_graph.size();
  const examples::Mlp mlp(data.train.features(), c.hidden, 10);
  const std::size_t d = mlp.parameter_count();
  const std::optional<ParameterLayout> layout = with_layout ? std::optional(mlp_layout(mlp)) : std::nullopt;

  std::vector<std::vector<float>> models = initial_models(c, mlp, n);
  const auto shares = examples::partition(data.train.labels, n, examples::parse_partition(c.partition), c.seed);
  std::vector<NodeWorker> workers = make_workers(c, mlp, data, shares);
  const long rounds_per_epoch = train::rounds_per_epoch(workers[0].sampler.batches_per_epoch(), c.local_steps);
  const long total_rounds = planned_rounds(c, rounds_per_epoch);
  const long eval_every = evaluation_interval(c, rounds_per_epoch, total_rounds);

  RunResult result;
  c.dp.validate();
  if (c.dp.enabled()) {
    // Each node's privacy w.r.t. its own samples; the smallest share has the largest sample rate.
    std::size_t smallest = shares[0].size();
    for (const auto& share : shares) smallest = std::min(smallest, share.size());
    const DpPlan plan = plan_dp_run(c.dp, c.batch, smallest, total_rounds * c.local_steps);
    result.dp_noise = plan.noise;
    result.dp_epsilon = plan.epsilon;
    for (int i = 0; i < n; ++i)
      workers[static_cast<std::size_t>(i)].private_gradient.emplace(c.dp, plan.noise, mlp, c.batch,
                                                                    PrivateGradient::stream_seed(c.seed, i));
  }
  result.algorithm = algorithm;
  result.coder = c.coder_of(algorithm);
  result.topology = schedule ? schedule->name() : topology.name();
  result.schedule = c.schedule;
  result.support_coding = codes_support<Optimizer>;
  result.nodes = n;
  result.parameters = d;
  for (int i = 0; i < n; ++i) result.link_count += topology.neighbors(i).size();
  if (schedule) {
    result.link_count = 0;
    for (int k = 0; k < schedule->period(); ++k) {
      std::uint64_t links = 0;
      for (int i = 0; i < n; ++i) links += schedule->at(k).neighbors(i).size();
      result.links_per_round.push_back(links);
    }
  }

  std::vector<std::span<float>> spans(models.begin(), models.end());
  // --fail-node: the nodes still running; evaluations, consensus and the average model cover these.
  std::vector<char> alive(static_cast<std::size_t>(n), 1);
  auto alive_models = [&] {
    std::vector<std::vector<float>> kept;
    for (int i = 0; i < n; ++i)
      if (alive[static_cast<std::size_t>(i)]) kept.push_back(models[static_cast<std::size_t>(i)]);
    return kept;
  };
  auto alive_spans = [&] {
    std::vector<std::span<float>> kept;
    for (int i = 0; i < n; ++i)
      if (alive[static_cast<std::size_t>(i)]) kept.push_back(spans[static_cast<std::size_t>(i)]);
    return kept;
  };
  const LostPeerPolicy lost_peer_policy = c.on_lost_peer == "drop" ? LostPeerPolicy::drop : LostPeerPolicy::fail;
  std::vector<NodeFailure> failures;
  if (c.fail_node >= 0) failures.push_back({c.fail_node, options.exchange_of_round(c.fail_round)});
  std::vector<NodeRejoin> rejoins;  // --rejoin-round: back at exchange R2 + 2, which must be a round's
  if (c.rejoin_round >= 0) {
    rejoins.push_back({c.fail_node, options.exchange_of_round(c.rejoin_round)});
    const long back = rejoins.back().round + kRepairDelay;
    decopt::detail::require(options.exchange_of_round(options.round_of_exchange(back)) == back,
                            "--rejoin-round " + std::to_string(c.rejoin_round) +
                                ": the node would mix again at a resynchronisation's exchange; move it by one round");
  }
  // Every survivor's log of the peers it dropped and took back, and the run's lost nodes, in
  // optimizer rounds. lost_of(i): node i's stop and rejoin in transport rounds, or node -1.
  auto report_lost = [&](auto&& node_at, auto&& lost_of) {
    for (int i = 0; i < n; ++i) {
      const LostPeer lost = lost_of(i);
      if (lost.node >= 0) {
        result.lost_nodes.push_back({i, options.round_of_exchange(lost.round),
                                     lost.rejoin_round < 0 ? -1 : options.round_of_exchange(lost.rejoin_round)});
        continue;
      }
      if constexpr (requires { node_at(i).lost_peers(); })
        for (const LostPeer& p : node_at(i).lost_peers()) {
          std::fprintf(stderr, "decopt-train: node %d dropped lost peer %d (missed at round %ld)\n", i, p.node,
                       options.round_of_exchange(p.round));
          if (p.rejoin_round >= 0)
            std::fprintf(stderr, "decopt-train: node %d took back peer %d (rejoined at round %ld)\n", i, p.node,
                         options.round_of_exchange(p.rejoin_round));
        }
    }
  };
  // A node's optimizer over `graph` (and the MLP's layout, when asked for: not over a schedule,
  // whose compressors need no layout).
  decopt::detail::require(!(schedule && layout), "--schedule does not run compressors that need the model's layout");
  auto make_node = [&](std::span<float> x, auto& endpoint) -> Optimizer {  // generic: not built for --step async
    if constexpr (!follows_schedule<Optimizer>)
      if (layout) return Optimizer(x, *layout, graph, endpoint, options, compressor, prox);
    return Optimizer(x, graph, endpoint, options, compressor, prox);
  };
  double loss_sum = 0;
  long loss_count = 0;
  double seconds_before = 0;  // run time before a resume
  auto elapsed = [&] { return seconds_before + std::chrono::duration<double>(Clock::now() - start).count(); };
  double simulated_now = std::nan("");  // the sim transport's virtual time at the current stop
  auto evaluate = [&](long round, std::uint64_t bytes) {
    const auto evaluation_start = Clock::now();
    EvalRow row;
    row.round = round;
    row.epoch = static_cast<double>(round) / static_cast<double>(rounds_per_epoch);
    row.bytes_sent = bytes;
    row.simulated_seconds = simulated_now;
    const bool last = round == total_rounds;
    const auto images = evaluation_images(c, data.test, last);
    const auto labels = evaluation_labels(c, data.test, last);
    row.test_samples = static_cast<long>(labels.size());
    // --eval-average scores one model, x̄ = (1/n) Σ_i x_i; otherwise each node's own, averaged.
    std::vector<std::vector<float>> scored = alive_models();
    if (c.eval_average) scored = {average_model(scored)};
    const double share = 1.0 / static_cast<double>(scored.size());
    for (const auto& model : scored) {
      const auto e = mlp.evaluate(std::span<const float>(model), images, labels);
      row.test_accuracy += e.accuracy * share;
      row.test_loss += e.loss * share;
      const auto zeros = std::count(model.begin(), model.end(), 0.0f);
      row.sparsity += static_cast<double>(zeros) / static_cast<double>(d) * share;
    }
    row.train_loss = loss_count > 0 ? loss_sum / static_cast<double>(loss_count) : std::nan("");
    loss_sum = 0;
    loss_count = 0;
    row.consensus_distance = consensus_distance(alive_spans());
    row.seconds = elapsed();
    result.evaluation_seconds.push_back((result.evaluation_seconds.empty() ? 0.0 : result.evaluation_seconds.back()) +
                                        std::chrono::duration<double>(Clock::now() - evaluation_start).count());
    result.rows.push_back(row);
    return &result.rows.back();
  };
  // Round t's step sizes, set on each node before its round. --lr-schedule cosine: lr_t of
  // schedule::Cosine over the run's rounds (constant: Options::lr, the same bits as before).
  // --lambda-warmup / --lambda-ramp: the prox step is lr_t·lambda_factor, a shrinkage of
  // lambda_factor·lr_t·λ (without them the optimizer's own, lr_t).
  const bool lambda_scheduled = c.lambda_warmup > 0 || c.lambda_ramp > 0;
  auto schedule_round = [&](auto& node, long round) {
    if (c.lr_schedule != "constant") node.set_learning_rate(learning_rate_at(c, round, total_rounds));
    if (lambda_scheduled) node.set_prox_step(node.options().lr * lambda_factor(c, round, rounds_per_epoch));
  };
  auto next_eval = [&](long round) { return std::min(total_rounds, (round / eval_every + 1) * eval_every); };
  // Rounds at which to stop: evaluations, checkpoints and the end.
  auto next_stop = [&](long round) {
    return std::min(next_eval(round), next_checkpoint(c, round, total_rounds));
  };
  const std::string identity = run_identity(c, algorithm);
  // Saves the run after `round` rounds; `node_at(i)` is node i's optimizer.
  auto save = [&](long round, auto&& node_at) {
    RunProgress p;
    p.rounds_done = round;
    p.seconds = elapsed();
    p.loss_sum = loss_sum;
    p.loss_count = loss_count;
    for (const auto& w : workers) {
      p.samplers.emplace_back(w.sampler.epoch(), w.sampler.position());
      if (w.private_gradient) p.noise_states.push_back(w.private_gradient->noise_state());
    }
    for (const auto& row : result.rows) p.rows.push_back(row_numbers(row));
    write_checkpoint(c.checkpoint, identity, p, n, node_at);
  };
  // Restores a saved run; returns the rounds already done.
  auto resume = [&](auto&& node_at) -> long {
    if (c.resume.empty()) return 0;
    const RunProgress p = read_checkpoint(c.resume, identity, n, total_rounds, node_at);
    decopt::detail::require(p.noise_states.size() == (c.dp.enabled() ? static_cast<std::size_t>(n) : 0u),
                            "the checkpoint's differential-privacy noise streams do not match this run");
    for (int i = 0; i < n; ++i) {
      auto& w = workers[static_cast<std::size_t>(i)];
      w.sampler.seek(p.samplers[static_cast<std::size_t>(i)].first, p.samplers[static_cast<std::size_t>(i)].second);
      if (w.private_gradient) w.private_gradient->set_noise_state(p.noise_states[static_cast<std::size_t>(i)]);
    }
    for (const auto& row : p.rows) result.rows.push_back(row_from_numbers(row));
    loss_sum = p.loss_sum;
    loss_count = p.loss_count;
    seconds_before = p.seconds;
    return p.rounds_done;
  };
  auto after_stop = [&](long round, std::uint64_t bytes, auto&& node_at) -> const EvalRow* {
    const EvalRow* row = (round == next_eval(round - 1)) ? evaluate(round, bytes) : nullptr;
    if (checkpoint_due(c, round, total_rounds)) save(round, node_at);
    return row;
  };

  if constexpr (gossips_asynchronously<Optimizer>) {
    run_async_transport<Optimizer>(c, topology, spans, async_options(c, options), compressor, prox, workers, data.train,
                                   total_rounds, next_stop, evaluate, progress, result, loss_sum, loss_count, simulated_now);
  } else if (c.transport == "sim") {
    DeclaredCompute declared(n);  // --step-seconds: the clock counts gradient evaluations, not measured time
    LinkModel link = c.link_model();
    if (c.step_seconds > 0) link.declared_compute = &declared;
    Simulation<Optimizer> sim(graph, spans,
                              {.options = options, .compressor = compressor, .prox = prox, .link = link, .layout = layout,
                               .on_lost_peer = lost_peer_policy, .failures = failures, .rejoins = rejoins});
    auto node_at = [&](int i) -> Optimizer& { return sim.node(i); };
    auto grad = [&](int i, std::span<const float> x, std::span<float> g) {
      if (c.step_seconds > 0) declared.charge(i, c.step_seconds * (i == c.slow_node ? c.slow_factor : 1.0));
      return workers[static_cast<std::size_t>(i)].gradient(data.train, x, g);
    };
    SupportLog support_log(codes_support<Optimizer> ? c.support_log : std::string(), n, static_cast<std::size_t>(d), result);
    std::uint64_t bytes_before = sim.total_bytes_sent();
    for (long t = resume(node_at); t < total_rounds; ++t) {
      for (int i = 0; i < n; ++i) schedule_round(sim.node(i), t);
      const auto stats = sim.round(grad);
      support_log.round(t + 1, sim.total_bytes_sent() - bytes_before, node_at);
      bytes_before = sim.total_bytes_sent();
      if (std::isfinite(stats.mean_loss)) {
        loss_sum += stats.mean_loss;
        ++loss_count;
      }
      simulated_now = sim.virtual_time();
      for (int i = 0; i < n; ++i) alive[static_cast<std::size_t>(i)] = sim.alive(i);
      const EvalRow* row = (t + 1 == next_stop(t)) ? after_stop(t + 1, sim.total_bytes_sent(), node_at) : nullptr;
      if (progress) progress(t + 1, total_rounds, row);
    }
    for (int i = 0; i < n; ++i) result.wait_seconds += sim.node(i).totals().wait_seconds;
    result.simulated_seconds = sim.virtual_time();
    result.neighbor_sum_error = sim.neighbor_sum_error();
    result.sent_sparsity = sent_sparsity(n, static_cast<std::size_t>(d), node_at);
    report_lost(node_at, [&](int i) {
      for (const LostPeer& p : sim.lost_nodes())
        if (p.node == i) return p;
      return LostPeer{-1, -1, -1};
    });
  } else if (c.transport == "threads") {
    ThreadNetwork network(network_graph, c.link_model(), std::chrono::milliseconds(static_cast<long>(c.timeout_s * 1000)));
    network.set_lost_peer_policy(lost_peer_policy);
    for (const NodeFailure& f : failures) network.inject_failure(f);
    for (const NodeRejoin& j : rejoins) network.inject_rejoin(j);
    std::vector<char> rejoined(static_cast<std::size_t>(n), 0);
    std::vector<Optimizer> nodes;
    nodes.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) nodes.push_back(make_node(spans[static_cast<std::size_t>(i)], network.endpoint(i)));
    auto node_at = [&](int i) -> Optimizer& { return nodes[static_cast<std::size_t>(i)]; };
    std::vector<double> node_loss(static_cast<std::size_t>(n), 0.0);
    std::vector<SlowDevice> devices = slow_devices(c);  // --slow-node: its injected delay (async_run.hpp)
    for (long t = resume(node_at); t < total_rounds;) {
      const long segment_end = next_stop(t);
      network.run([&](int r) {
        node_loss[static_cast<std::size_t>(r)] = 0;
        auto& node = nodes[static_cast<std::size_t>(r)];
        // --rejoin-round: a stopped node comes back in the segment whose rounds reach its rejoin's boundary
        auto rejoin_here = [&] {
          if constexpr (requires { node.rejoin_round(); node.rejoin(); }) {
            const long back = node.rejoin_round();
            if (back <= t || back > segment_end) return false;
            node.rejoin();
            rejoined[static_cast<std::size_t>(r)] = 1;
            return true;
          } else {
            return false;  // gradient tracking: no lost-peer repair (check_lost_peer_flags)
          }
        };
        if (network.stopped_at(r) >= 0 && !rejoined[static_cast<std::size_t>(r)] && !rejoin_here()) return;  // stopped
        auto& worker = workers[static_cast<std::size_t>(r)];
        SlowDevice& device = devices[static_cast<std::size_t>(r)];
        double sum = 0;
        auto run_to_segment_end = [&] {
          for (long s = node.round(); s < segment_end; ++s) {
            schedule_round(node, s);
            sum += device.step(node, [&](std::span<const float> x, std::span<float> g) { return worker.gradient(data.train, x, g); }).loss;
          }
        };
        try {
          run_to_segment_end();
        } catch (const NodeCrashed&) {  // its injected failure; it may come back in this same segment
          if (!rejoin_here()) throw;
          run_to_segment_end();
        }
        node_loss[static_cast<std::size_t>(r)] = sum;
      });
      for (int i = 0; i < n; ++i)
        alive[static_cast<std::size_t>(i)] = network.stopped_at(i) < 0 || rejoined[static_cast<std::size_t>(i)];
      for (double l : node_loss) loss_sum += l / n;
      loss_count += segment_end - t;
      std::uint64_t bytes = 0;
      for (const auto& node : nodes) bytes += node.totals().bytes_sent;
      t = segment_end;
      const EvalRow* row = after_stop(t, bytes, node_at);
      if (progress) progress(t, total_rounds, row);
    }
    for (const auto& node : nodes) result.wait_seconds += node.totals().wait_seconds;
    result.sent_sparsity = sent_sparsity(n, static_cast<std::size_t>(d), node_at);
    report_lost(node_at, [&](int i) {
      const long stopped = network.stopped_at(i);
      return stopped < 0 ? LostPeer{-1, -1, -1}
                         : LostPeer{i, stopped, rejoined[static_cast<std::size_t>(i)] ? network.rejoin_round(i) : -1};
    });
    result.slow_compute_ratio = slow_compute_ratio(c, devices, std::vector<long>(static_cast<std::size_t>(n), total_rounds));
  } else if (c.transport == "mpi") {
#ifdef DECOPT_TRAIN_WITH_MPI
    // One node per MPI rank. Evaluations and the checksum are collective (each wait bounded by
    // --timeout); rank 0 reports.
    decopt::detail::require(c.checkpoint.empty() && c.resume.empty(), "--checkpoint/--resume are not supported with --transport mpi");
    const MpiOptions mpi = mpi_options(c);
    MpiTransport transport(network_graph, MPI_COMM_WORLD, mpi);
    const int me = transport.rank();
    transport.check_same_dimension(d);
    auto& mine = models[static_cast<std::size_t>(me)];
    Optimizer node = make_node(std::span<float>(mine), transport);
    auto& worker = workers[static_cast<std::size_t>(me)];
    auto sum_all = [&](double v) { return mpi_sum(std::vector<double>{v}, MPI_COMM_WORLD, mpi, "the other ranks' evaluation")[0]; };
    auto evaluate_mpi = [&](long round) {
      EvalRow row;
      row.round = round;
      row.epoch = static_cast<double>(round) / static_cast<double>(rounds_per_epoch);
      const bool last = round == total_rounds;
      const auto labels = evaluation_labels(c, data.test, last);
      row.test_samples = static_cast<long>(labels.size());
      const auto e = mlp.evaluate(std::span<const float>(mine), evaluation_images(c, data.test, last), labels);
      row.test_accuracy = sum_all(e.accuracy) / n;
      row.test_loss = sum_all(e.loss) / n;
      row.sparsity = sum_all(static_cast<double>(std::count(mine.begin(), mine.end(), 0.0f)) / static_cast<double>(d)) / n;
      row.bytes_sent = static_cast<std::uint64_t>(sum_all(static_cast<double>(node.totals().bytes_sent)));
      row.train_loss = sum_all(loss_count > 0 ? loss_sum / static_cast<double>(loss_count) : 0.0) / n;
      loss_sum = 0;
      loss_count = 0;
      const std::vector<double> local(mine.begin(), mine.end());
      const std::vector<double> mean = mpi_sum(local, MPI_COMM_WORLD, mpi, "the other ranks' models");
      double distance = 0;
      for (std::size_t k = 0; k < d; ++k) distance += std::pow(local[k] - mean[k] / n, 2);
      row.consensus_distance = sum_all(distance) / n;
      row.seconds = elapsed();
      result.rows.push_back(row);
      return &result.rows.back();
    };
    for (long t = 0; t < total_rounds; ++t) {
      schedule_round(node, t);
      const double loss =
          node.step([&](std::span<const float> x, std::span<float> g) { return worker.gradient(data.train, x, g); }).loss;
      if (std::isfinite(loss)) {
        loss_sum += loss;
        ++loss_count;
      }
      const EvalRow* row = (t + 1 == next_eval(t)) ? evaluate_mpi(t + 1) : nullptr;
      if (progress && me == 0) progress(t + 1, total_rounds, row);
    }
    // Every node's model on rank 0, in rank order, for the checksum.
    const std::vector<float> all = mpi_gather(std::span<const float>(mine), 0, MPI_COMM_WORLD, mpi, "the other ranks' models");
    for (int i = 0; i < n && me == 0; ++i)
      std::copy(all.begin() + static_cast<std::ptrdiff_t>(d) * i, all.begin() + static_cast<std::ptrdiff_t>(d) * (i + 1),
                models[static_cast<std::size_t>(i)].begin());
    result.wait_seconds = sum_all(node.totals().wait_seconds);
#else
    throw ConfigError("this decopt-train was built without MPI (install libopenmpi-dev and rebuild)");
#endif
  } else {
    throw ConfigError("transport '" + c.transport + "' is not available in this build of decopt-train");
  }
  result.rounds = total_rounds;
  // The deployed model x̄ = (1/n) Σ_i x_i, beside the nodes' mean (under MPI rank 0 has every model).
  result.average_model_accuracy =
      mlp.evaluate(std::span<const float>(average_model(c.transport == "mpi" ? models : alive_models())), data.test.images, std::span<const std::uint8_t>(data.test.labels))
          .accuracy;
  result.model_checksum = model_checksum(models);
  result.seconds = elapsed();
  return result;
}

}  // namespace detail

/// Runs `algorithm` (malcom | choco | dpsgd | gt | sgp) with the config's step policy, coder
/// (TrainConfig::coder_of), --compressor and --schedule. Defined in train/run_experiment.cpp, compiled once
/// into the library decopt_train_runs: it instantiates every optimizer decopt-train can run (26
/// types, each with the whole driver of run_with), which the program and the tests used to
/// compile again in each file that called it.
/// @throws ConfigError for an unknown algorithm, coder or compressor, or a combination that does
///         not apply (elias/vsc with dpsgd; --compressor with dpsgd, --step overlap or --coder)
RunResult run_experiment(const TrainConfig& c, const std::string& algorithm, const TrainingData& data,
                         const ProgressFn& progress);

}  // namespace decopt::train
