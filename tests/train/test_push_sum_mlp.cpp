// Stochastic Gradient Push on the Fashion-MNIST MLP (issue 17 item 2), through decopt-train's own
// driver (run_experiment with --algorithm sgp, examples/train/push_sum_run.cpp): on SGP's directed
// exponential graph (3 out-neighbours of 8) it trains as well as D-PSGD on the undirected
// exponential graph (5 neighbours), with the same data, initial model, batches and seed, and sends
// 8 + 4d bytes per out-neighbour per round ([slow]: the Release suite runs it, not the sanitizers);
// and, quick enough for the sanitizers, the driver on a few rounds: the same bits on the simulated
// network and on threads, the exact byte count, positive weights and a resumable state.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include <cmath>
#include <cstdio>

#include "train/config.hpp"
#include "train/experiment.hpp"

using namespace decopt;
using namespace decopt::train;

TEST_CASE("decopt-train's SGP driver gives the same bits on sim and threads and sends 8 + 4d bytes per out-neighbour",
          "[train][push-sum]") {
  TrainConfig c;
  c.algorithm = "sgp";
  c.nodes = 5;
  c.rounds = 6;
  c.train_samples = 500;
  c.hidden = 16;
  c.eval_every = 3;
  const TrainingData data = load_data(c);
  for (const char* graph : {"directed-exponential", "directed-ring"})
    for (const double momentum : {0.0, 0.9}) {
      CAPTURE(graph, momentum);
      c.topology = graph;
      c.momentum = momentum;
      c.transport = "sim";
      const RunResult on_sim = run_experiment(c, "sgp", data, {});
      c.transport = "threads";
      const RunResult on_threads = run_experiment(c, "sgp", data, {});
      CHECK(on_sim.model_checksum == on_threads.model_checksum);
      CHECK(on_sim.last().test_accuracy == on_threads.last().test_accuracy);
      const DirectedGraph directed = make_directed_graph(c);
      std::uint64_t links = 0;
      for (int i = 0; i < c.nodes; ++i) links += static_cast<std::uint64_t>(directed.out_degree(i));
      CHECK(on_sim.link_count == links);
      CHECK(on_sim.push_sum_message_bytes == 8 + 4 * on_sim.parameters);
      CHECK(on_sim.last().bytes_sent == 6 * links * on_sim.push_sum_message_bytes);
      CHECK(on_sim.rows.size() == 2);
      CHECK(on_sim.push_sum_weight_min > 0);
      CHECK(on_sim.push_sum_weight_max == Approx(1).margin(1e-12));  // regular graphs
      CHECK(on_sim.last().consensus_distance > 0);  // 6 rounds of different batches: not at consensus
      CHECK(std::isfinite(on_sim.average_model_accuracy));
    }
  c.transport = "mpi";
  CHECK_THROWS_AS(run_experiment(c, "sgp", data, {}), ConfigError);
}

TEST_CASE("SGP on the directed exponential graph trains the MLP within 1 point of D-PSGD on the undirected one "
          "(8 nodes, 2 epochs)", "[train][slow][push-sum]") {
  TrainConfig c;  // decopt-train's defaults: 8 nodes, iid, 2 epochs, lr 0.1, batch 32, seed 1
  c.topology = "exponential";
  const TrainingData data = load_data(c);
  const RunResult dpsgd = run_experiment(c, "dpsgd", data, {});
  TrainConfig directed = c;
  directed.algorithm = "sgp";
  directed.topology = "directed-exponential";
  const RunResult sgp = run_experiment(directed, "sgp", data, {});
  std::printf("SGP %s: accuracy %.4f (average model %.4f), %.1f MB; D-PSGD %s: %.4f (%.4f), %.1f MB; %ld rounds\n",
              sgp.topology.c_str(), sgp.last().test_accuracy, sgp.average_model_accuracy,
              static_cast<double>(sgp.last().bytes_sent) / 1e6, dpsgd.topology.c_str(), dpsgd.last().test_accuracy,
              dpsgd.average_model_accuracy, static_cast<double>(dpsgd.last().bytes_sent) / 1e6, sgp.rounds);
  CHECK(sgp.rounds == dpsgd.rounds);
  CHECK(sgp.last().test_samples == 10000);
  CHECK(sgp.last().test_accuracy >= dpsgd.last().test_accuracy - 0.01);
  CHECK(sgp.average_model_accuracy >= dpsgd.average_model_accuracy - 0.01);
  CHECK(sgp.last().test_accuracy >= 0.80);
  // 3 out-neighbours of 8 + 4d bytes against 5 neighbours of 4d (+ a header) bytes.
  const std::uint64_t d = sgp.parameters;
  CHECK(sgp.last().bytes_sent == static_cast<std::uint64_t>(sgp.rounds) * 8 * 3 * (8 + 4 * d));
  CHECK(sgp.last().bytes_sent < dpsgd.last().bytes_sent);
  // A regular graph: push-sum's weights stay 1 (to rounding), so the nodes' models are z_i itself.
  CHECK(std::abs(sgp.push_sum_weight_min - 1) < 1e-12);
  CHECK(std::abs(sgp.push_sum_weight_max - 1) < 1e-12);
}
