// decopt-overlap-bench — how much of the communication the CoCoD-style overlapped step hides.
//
// Each node trains the Fashion-MNIST-shaped MLP (784 → hidden → 10) on synthetic data for τ local
// steps per round, and exchanges Malcom-PSGD messages over a ThreadNetwork whose LinkModel delays
// every message for real. The link is calibrated so that one message takes `--comm-ratio` times
// the measured computation of a round. The same rounds then run synchronously (compute, then
// communicate) and overlapped (communicate while computing); the last stdout line is one JSON
// object with per-round compute_seconds, comm_seconds, sync_seconds and overlap_seconds.
//
// Only the local steps can hide the exchange: encoding the message (before the post) and decoding
// and mixing the neighbours' messages (after the collect) are on the critical path either way, so
// an overlapped round costs ≈ encode + max(local steps, communication) + decode/mix. The defaults
// (batch 256, τ = 8) make the local steps the bulk of the computation, as in real training.
#include <CLI/CLI.hpp>
#include <decopt/decopt.hpp>

#include <chrono>
#include <cstdio>
#include <vector>

#include "fashion/mlp.hpp"

namespace {

struct Settings {
  int nodes = 2;
  int rounds = 30;
  int local_steps = 8;
  int batch = 256;
  int hidden = 128;
  double comm_ratio = 1.0;
  std::uint64_t seed = 1;
  bool json = false;
};

/// Synthetic per-node data with the shape of Fashion-MNIST, and the node's gradient callback.
struct NodeTask {
  decopt::examples::Mlp model;
  Eigen::MatrixXf x;
  std::vector<std::uint8_t> y;
  NodeTask(int hidden, int batch, std::uint64_t seed) : model(784, hidden, 10), x(784, batch), y(static_cast<std::size_t>(batch)) {
    decopt::Rng rng(seed);
    for (Eigen::Index k = 0; k < x.size(); ++k) x.data()[k] = static_cast<float>(rng.normal());
    for (auto& label : y) label = static_cast<std::uint8_t>(rng.below(10));
  }
  double operator()(std::span<const float> p, std::span<float> g) { return model.loss_and_gradient(p, x, y, g); }
};

struct Measurement {
  double seconds_per_round = 0;
  double compute_per_round = 0;  // mean over nodes of the non-waiting time
  double message_bytes = 0;      // mean size of one message
};

template <class Step>
Measurement run(const Settings& s, decopt::LinkModel link) {
  using Opt = decopt::MalcomPSGD<Step>;
  const auto topology = decopt::Topology::ring(s.nodes);
  decopt::ThreadNetwork network(topology, link);
  const decopt::examples::Mlp mlp(784, s.hidden, 10);
  std::vector<std::vector<float>> models(static_cast<std::size_t>(s.nodes), std::vector<float>(mlp.parameter_count()));
  decopt::Rng init(s.seed);
  mlp.initialize(std::span<float>(models[0]), init);
  for (auto& m : models) m = models[0];
  decopt::Options options;
  options.lr = 0.05;
  options.consensus_step = 0.5;
  options.local_steps = s.local_steps;
  options.seed = s.seed;
  std::vector<Opt> nodes;
  std::vector<NodeTask> tasks;
  for (int i = 0; i < s.nodes; ++i) {
    nodes.emplace_back(std::span<float>(models[static_cast<std::size_t>(i)]), topology, network.endpoint(i), options,
                       typename Opt::Compressor({}, decopt::DitheredQuantizer{256, decopt::Norm::L2}, {}), decopt::L1Prox{1e-4});
    tasks.emplace_back(s.hidden, s.batch, s.seed + static_cast<std::uint64_t>(i));
  }
  const auto start = std::chrono::steady_clock::now();
  network.run([&](int r) {
    for (int t = 0; t < s.rounds; ++t) nodes[static_cast<std::size_t>(r)].step(tasks[static_cast<std::size_t>(r)]);
  });
  Measurement m;
  m.seconds_per_round = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / s.rounds;
  for (const auto& node : nodes) {
    m.compute_per_round += node.totals().compute_seconds / s.rounds / s.nodes;
    m.message_bytes += static_cast<double>(node.totals().bytes_sent) / (s.rounds * static_cast<double>(node.neighbors().size())) / s.nodes;
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  CLI::App app{"decopt-overlap-bench: synchronous vs overlapped rounds under a link model"};
  app.add_option("--nodes", s.nodes, "nodes on a ring, one thread each (default 2: one per core here)")->check(CLI::Range(2, 64));
  app.add_option("--rounds", s.rounds, "rounds per measurement")->check(CLI::PositiveNumber);
  app.add_option("--local-steps", s.local_steps, "local steps per round (the computation to hide)")->check(CLI::PositiveNumber);
  app.add_option("--batch", s.batch, "mini-batch size")->check(CLI::PositiveNumber);
  app.add_option("--hidden", s.hidden, "hidden units")->check(CLI::PositiveNumber);
  app.add_option("--comm-ratio", s.comm_ratio, "message transfer time as a multiple of a round's computation")->check(CLI::PositiveNumber);
  app.add_option("--seed", s.seed, "seed");
  app.add_flag("--json", s.json, "only the JSON line");
  CLI11_PARSE(app, argc, argv);
  try {
    // 1. Calibrate on instant links: computation per round and message size.
    const Measurement calibration = run<decopt::SyncStep>(s, decopt::LinkModel{});
    const double comm = s.comm_ratio * calibration.compute_per_round;
    decopt::LinkModel link;
    link.bandwidth_bytes_per_second = calibration.message_bytes / comm;
    // 2. The same rounds, synchronous and overlapped, over the calibrated link.
    const Measurement sync = run<decopt::SyncStep>(s, link);
    const Measurement overlap = run<decopt::OverlappedStep>(s, link);
    const double compute = sync.compute_per_round;
    const double bound = std::max(compute, comm);
    if (!s.json)
      std::fprintf(stderr,
                   "per round: compute %.2f ms, communication %.2f ms (%.0f-byte messages at %.2f MB/s)\n"
                   "  synchronous %.2f ms, overlapped %.2f ms: overlapped = %.3f x max(compute, comm), "
                   "synchronous = %.3f x overlapped\n",
                   1e3 * compute, 1e3 * comm, calibration.message_bytes, link.bandwidth_bytes_per_second / 1e6,
                   1e3 * sync.seconds_per_round, 1e3 * overlap.seconds_per_round, overlap.seconds_per_round / bound,
                   sync.seconds_per_round / overlap.seconds_per_round);
    std::printf("{\"nodes\":%d,\"rounds\":%d,\"local_steps\":%d,\"message_bytes\":%.0f,\"compute_seconds\":%.6g,"
                "\"comm_seconds\":%.6g,\"sync_seconds\":%.6g,\"overlap_seconds\":%.6g,\"overlap_over_max\":%.4f,"
                "\"sync_over_overlap\":%.4f}\n",
                s.nodes, s.rounds, s.local_steps, calibration.message_bytes, compute, comm, sync.seconds_per_round,
                overlap.seconds_per_round, overlap.seconds_per_round / bound, sync.seconds_per_round / overlap.seconds_per_round);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decopt-overlap-bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
