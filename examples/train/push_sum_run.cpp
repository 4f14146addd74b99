// train/push_sum_run.cpp — run_push_sum (declared in train/push_sum_run.hpp): decopt-train's
// --algorithm sgp driver, compiled once into decopt_train_runs in a file of its own (so that a change
// here does not recompile run_experiment.cpp's optimizer types).
#include "train/push_sum_run.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "train/checkpoint.hpp"
#include "train/config.hpp"
#include "train/push_sum_flags.hpp"

namespace decopt::train {

namespace detail {

/// Trains the MLP with StochasticGradientPush<Local> on --topology directed-ring | directed-exponential.
/// @throws ConfigError for a graph that does not fit --nodes, a damaged or foreign --resume file;
///         TransportError for a node that does not answer within --timeout (threads)
template <LocalUpdate Local>
RunResult run_push_sum_with(const TrainConfig& c, const TrainingData& data, Local local, const ProgressFn& progress) {
  using Clock = std::chrono::steady_clock;
  using Node = StochasticGradientPush<Local>;
  const auto start = Clock::now();
  const DirectedGraph graph = make_directed_graph(c);
  const Topology network_graph = graph.undirected();  // transports deliver along both directions
  const int n = graph.size();
  const examples::Mlp mlp(data.train.features(), c.hidden, 10);
  const std::size_t d = mlp.parameter_count();

  std::vector<std::vector<float>> models = initial_models(c, mlp, n);
  const auto shares = examples::partition(data.train.labels, n, examples::parse_partition(c.partition), c.seed);
  std::vector<NodeWorker> workers = make_workers(c, mlp, data, shares);
  const long rounds_per_epoch = train::rounds_per_epoch(workers[0].sampler.batches_per_epoch(), 1);
  const long total_rounds = planned_rounds(c, rounds_per_epoch);
  const long eval_every = evaluation_interval(c, rounds_per_epoch, total_rounds);

  RunResult result;
  result.algorithm = "sgp";
  result.coder = c.coder_of("sgp");
  result.topology = graph.name();
  result.nodes = n;
  result.parameters = d;
  for (int i = 0; i < n; ++i) result.link_count += static_cast<std::uint64_t>(graph.out_degree(i));
  result.push_sum_message_bytes = sizeof(double) + sizeof(float) * d;
  // Every message has that size, so the bytes after t rounds are t · Σ_i d_i · (8 + 4d) — also
  // across a resume (the rounds are checked against what the nodes report below).
  auto bytes_after = [&](long rounds) { return static_cast<std::uint64_t>(rounds) * result.link_count * result.push_sum_message_bytes; };

  std::vector<std::span<float>> spans(models.begin(), models.end());
  double loss_sum = 0;
  long loss_count = 0;
  double seconds_before = 0;  // run time before a resume
  auto elapsed = [&] { return seconds_before + std::chrono::duration<double>(Clock::now() - start).count(); };
  auto evaluate = [&](long round) {
    const auto evaluation_start = Clock::now();
    const bool last = round == total_rounds;
    const auto labels = evaluation_labels(c, data.test, last);
    EvalRow& row = result.rows.emplace_back();
    row.round = round;
    row.epoch = static_cast<double>(round) / static_cast<double>(rounds_per_epoch);
    row.bytes_sent = bytes_after(round);
    row.test_samples = static_cast<long>(labels.size());
    // --eval-average scores x̄ = (1/n) Σ_i x_i; otherwise each node's de-biased model, averaged.
    const std::vector<std::vector<float>> scored = c.eval_average ? std::vector<std::vector<float>>{average_model(models)} : models;
    for (const auto& model : scored) {
      const auto e = mlp.evaluate(std::span<const float>(model), evaluation_images(c, data.test, last), labels);
      row.test_accuracy += e.accuracy / static_cast<double>(scored.size());
      row.test_loss += e.loss / static_cast<double>(scored.size());
      row.sparsity += static_cast<double>(std::count(model.begin(), model.end(), 0.0f)) /
                      (static_cast<double>(d) * static_cast<double>(scored.size()));
    }
    row.train_loss = loss_count > 0 ? loss_sum / static_cast<double>(loss_count) : std::nan("");
    loss_sum = 0;
    loss_count = 0;
    row.consensus_distance = consensus_distance(std::span<const std::span<float>>(spans));
    row.seconds = elapsed();
    result.evaluation_seconds.push_back((result.evaluation_seconds.empty() ? 0.0 : result.evaluation_seconds.back()) +
                                        std::chrono::duration<double>(Clock::now() - evaluation_start).count());
    return &row;
  };
  const std::string identity = run_identity(c, "sgp");
  auto next_eval = [&](long round) { return std::min(total_rounds, (round / eval_every + 1) * eval_every); };
  auto next_stop = [&](long round) { return std::min(next_eval(round), next_checkpoint(c, round, total_rounds)); };
  // After `round` rounds: the evaluation and the checkpoint due then (node_at(i) is node i).
  auto after_stop = [&](long round, auto&& node_at) -> const EvalRow* {
    const EvalRow* row = round == next_eval(round - 1) ? evaluate(round) : nullptr;
    if (checkpoint_due(c, round, total_rounds)) {
      RunProgress p;
      p.rounds_done = round;
      p.seconds = elapsed();
      p.loss_sum = loss_sum;
      p.loss_count = loss_count;
      for (const auto& w : workers) p.samplers.emplace_back(w.sampler.epoch(), w.sampler.position());
      for (const auto& r : result.rows) p.rows.push_back(row_numbers(r));
      write_checkpoint(c.checkpoint, identity, p, n, node_at);
    }
    return row;
  };
  // --resume: every node's z, w and local state, the samplers and the rows so far; the rounds done.
  auto resume = [&](auto&& node_at) -> long {
    if (c.resume.empty()) return 0;
    const RunProgress p = read_checkpoint(c.resume, identity, n, total_rounds, node_at);
    for (int i = 0; i < n; ++i)
      workers[static_cast<std::size_t>(i)].sampler.seek(p.samplers[static_cast<std::size_t>(i)].first,
                                                        p.samplers[static_cast<std::size_t>(i)].second);
    for (const auto& row : p.rows) result.rows.push_back(row_from_numbers(row));
    loss_sum = p.loss_sum;
    loss_count = p.loss_count;
    seconds_before = p.seconds;
    return p.rounds_done;
  };
  auto gradient_of = [&](int i) {
    return [&, i](std::span<const float> x, std::span<float> g) {
      return workers[static_cast<std::size_t>(i)].gradient(data.train, x, g);
    };
  };
  const PushSumOptions options{.lr = c.lr};
  std::vector<Node> nodes;
  nodes.reserve(static_cast<std::size_t>(n));
  auto node_at = [&](int i) -> Node& { return nodes[static_cast<std::size_t>(i)]; };
  std::uint64_t bytes_reported = 0;  // what the nodes' RoundStats say they sent in this process
  long first_round = 0;

  if (c.transport == "sim") {
    SimulatedNetwork network(network_graph);
    for (int i = 0; i < n; ++i) nodes.emplace_back(spans[static_cast<std::size_t>(i)], graph, network.endpoint(i), options, local);
    first_round = resume(node_at);
    for (long t = first_round; t < total_rounds; ++t) {
      // Lockstep: every node posts its round before any node collects it.
      for (int i = 0; i < n; ++i) {
        if (c.lr_schedule != "constant") node_at(i).set_learning_rate(learning_rate_at(c, t, total_rounds));
        node_at(i).begin_round(gradient_of(i));
      }
      double round_loss = 0;
      for (int i = 0; i < n; ++i) {
        const RoundStats stats = node_at(i).finish_round();
        bytes_reported += stats.bytes_sent;
        result.wait_seconds += stats.wait_seconds;
        round_loss += stats.loss / n;
      }
      if (std::isfinite(round_loss)) {
        loss_sum += round_loss;
        ++loss_count;
      }
      const EvalRow* row = t + 1 == next_stop(t) ? after_stop(t + 1, node_at) : nullptr;
      if (progress) progress(t + 1, total_rounds, row);
    }
  } else if (c.transport == "threads") {
    ThreadNetwork network(network_graph, {}, std::chrono::milliseconds(static_cast<long>(c.timeout_s * 1000)));
    for (int i = 0; i < n; ++i) nodes.emplace_back(spans[static_cast<std::size_t>(i)], graph, network.endpoint(i), options, local);
    first_round = resume(node_at);
    std::vector<double> node_loss(static_cast<std::size_t>(n)), node_wait(static_cast<std::size_t>(n));
    std::vector<std::uint64_t> node_bytes(static_cast<std::size_t>(n));
    for (long t = first_round; t < total_rounds;) {
      const long segment_end = next_stop(t);
      network.run([&](int r) {
        const auto k = static_cast<std::size_t>(r);
        node_loss[k] = 0;
        for (long s = t; s < segment_end; ++s) {
          if (c.lr_schedule != "constant") nodes[k].set_learning_rate(learning_rate_at(c, s, total_rounds));
          const RoundStats stats = nodes[k].step(gradient_of(r));
          node_loss[k] += stats.loss;
          node_wait[k] += stats.wait_seconds;
          node_bytes[k] += stats.bytes_sent;
        }
      });
      for (double l : node_loss) loss_sum += l / n;
      loss_count += segment_end - t;
      t = segment_end;
      const EvalRow* row = after_stop(t, node_at);
      if (progress) progress(t, total_rounds, row);
    }
    for (int i = 0; i < n; ++i) {
      result.wait_seconds += node_wait[static_cast<std::size_t>(i)];
      bytes_reported += node_bytes[static_cast<std::size_t>(i)];
    }
  } else {
    throw ConfigError("--algorithm sgp runs on --transport sim or threads, not " + c.transport);
  }
  decopt::detail::require(bytes_reported == bytes_after(total_rounds) - bytes_after(first_round),
                          "sgp: the nodes sent " + std::to_string(bytes_reported) + " bytes, not the " +
                              std::to_string(bytes_after(total_rounds) - bytes_after(first_round)) + " their rounds make");
  result.rounds = total_rounds;
  result.push_sum_weight_min = node_at(0).weight();
  result.push_sum_weight_max = node_at(0).weight();
  for (const Node& node : nodes) {
    result.push_sum_weight_min = std::min(result.push_sum_weight_min, node.weight());
    result.push_sum_weight_max = std::max(result.push_sum_weight_max, node.weight());
  }
  result.average_model_accuracy =
      mlp.evaluate(std::span<const float>(average_model(models)), data.test.images, std::span<const std::uint8_t>(data.test.labels))
          .accuracy;
  result.model_checksum = model_checksum(models);
  result.seconds = elapsed();
  return result;
}

}  // namespace detail

/// --algorithm sgp: StochasticGradientPush with SGD, or heavy ball when --momentum > 0.
RunResult run_push_sum(const TrainConfig& c, const TrainingData& data, const ProgressFn& progress) {
  if (c.momentum > 0) return detail::run_push_sum_with(c, data, HeavyBall{.momentum = c.momentum}, progress);
  return detail::run_push_sum_with(c, data, SGD{}, progress);
}

}  // namespace decopt::train
