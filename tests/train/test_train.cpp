// decopt-train's experiment layer on the real Fashion-MNIST data: the claims (tagged
// [slow]: run by the Release suite, not under the sanitizers), determinism across runs and
// transports, and topology/node-count errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "common/output.hpp"
#include "train/config.hpp"
#include "train/experiment.hpp"

using namespace decopt::train;

namespace {
const TrainingData& full_data() {
  static const TrainingData data = [] {
    TrainConfig c;
    return load_data(c);
  }();
  return data;
}
/// A run small enough for every build: 4 nodes, the first 2000 training images, 16 hidden units.
TrainConfig small_config(long rounds) {
  TrainConfig c;
  c.nodes = 4;
  c.rounds = rounds;
  c.train_samples = 2000;
  c.hidden = 16;
  return c;
}
}  // namespace

TEST_CASE("Malcom-PSGD sends at most 25% of CHOCO-SGD's bytes at the same accuracy (8 nodes, ring, 2 epochs)", "[train][slow]") {
  TrainConfig c;  // the defaults: 8 nodes, ring, iid, 2 epochs, seed 1
  c.seed = 1;
  const auto& data = full_data();
  const auto malcom = run_experiment(c, "malcom", data, {});
  const auto choco = run_experiment(c, "choco", data, {});
  const double m_acc = malcom.last().test_accuracy, c_acc = choco.last().test_accuracy;
  CAPTURE(m_acc, c_acc, malcom.last().bytes_sent, choco.last().bytes_sent);
  CHECK(static_cast<double>(malcom.last().bytes_sent) <= 0.25 * static_cast<double>(choco.last().bytes_sent));
  CHECK(std::abs(m_acc - c_acc) <= 0.01);
  CHECK(m_acc >= 0.80);
  CHECK(choco.bits_per_param_per_round() == Approx(10.0).epsilon(0.01));  // ⌈log2(2·256+1)⌉ bits + header
}

TEST_CASE("Malcom-PSGD on 8 nodes reaches 0.85 test accuracy after 10 epochs", "[train][slow]") {
  TrainConfig c;
  c.epochs = 10;
  const auto malcom = run_experiment(c, "malcom", full_data(), {});
  CAPTURE(malcom.last().test_accuracy);
  CHECK(malcom.last().test_accuracy >= 0.85);
  CHECK(malcom.rows.size() >= 20);  // --evals 20 by default (it was one evaluation per epoch)
}

TEST_CASE("Same seed, same model bits: run after run, and on the simulated and threaded transports", "[train][determinism]") {
  TrainConfig c;
  c.nodes = 4;
  c.rounds = 12;
  c.eval_every = 6;
  c.train_samples = 2000;
  c.hidden = 16;  // small model: this also runs under the sanitizers
  const TrainingData data = load_data(c);
  for (const std::string algorithm : {"malcom", "choco", "dpsgd"}) {
    CAPTURE(algorithm);
    const auto a = run_experiment(c, algorithm, data, {});
    const auto b = run_experiment(c, algorithm, data, {});
    CHECK(a.model_checksum == b.model_checksum);
    TrainConfig threads = c;
    threads.transport = "threads";
    CHECK(run_experiment(threads, algorithm, data, {}).model_checksum == a.model_checksum);
    TrainConfig overlap = threads;
    overlap.step = "overlap";
    TrainConfig overlap_sim = c;
    overlap_sim.step = "overlap";
    CHECK(run_experiment(overlap, algorithm, data, {}).model_checksum ==
          run_experiment(overlap_sim, algorithm, data, {}).model_checksum);
    TrainConfig other_seed = c;
    other_seed.seed = 2;
    CHECK(run_experiment(other_seed, algorithm, data, {}).model_checksum != a.model_checksum);
    CHECK(a.rows.size() == 2);
    CHECK(a.last().bytes_sent > 0);
  }
}

TEST_CASE("A topology that does not fit the node count is a ConfigError naming both", "[train][errors]") {
  TrainConfig c;
  c.nodes = 6;
  c.topology = "hypercube";
  REQUIRE_THROWS_WITH(make_topology(c), Catch::Contains("power-of-two") && Catch::Contains("6"));
  c.nodes = 7;
  c.topology = "torus";
  REQUIRE_THROWS_WITH(make_topology(c), Catch::Contains("torus") && Catch::Contains("7"));
  c.nodes = 12;
  CHECK(make_topology(c).name().find("torus(3x4") != std::string::npos);
  c.topology = "erdos-renyi";
  c.erdos_renyi_p = 0.5;
  CHECK(make_topology(c).size() == 12);
}

TEST_CASE("Differentially private training: the accountant's epsilon, reproducible noise, clear errors", "[train][privacy]") {
  TrainConfig c;
  c.nodes = 4;
  c.rounds = 6;
  c.eval_every = 6;
  c.train_samples = 2000;
  c.hidden = 16;
  const TrainingData data = load_data(c);
  TrainConfig dp = c;
  dp.dp.clip = 1.0;
  dp.dp.noise = 1.1;
  dp.dp.clipping = "psac";
  const auto a = run_experiment(dp, "dpsgd", data, {});
  const auto b = run_experiment(dp, "dpsgd", data, {});
  CHECK(a.model_checksum == b.model_checksum);  // the noise comes from seeded streams
  CHECK(a.model_checksum != run_experiment(c, "dpsgd", data, {}).model_checksum);
  // 500 samples per node, batch 32: q = 32/500, 6 steps.
  decopt::privacy::RdpAccountant accountant;
  accountant.step(1.1, 32.0 / 500.0, 6);
  CHECK(a.dp_epsilon == Approx(accountant.epsilon(1e-5)).epsilon(1e-12));
  CHECK(a.dp_noise == 1.1);

  TrainConfig target = dp;
  target.dp.noise = 0;
  target.dp.target_epsilon = 4.0;
  const auto t = run_experiment(target, "dpsgd", data, {});
  CHECK(t.dp_epsilon <= 4.0);
  CHECK(t.dp_epsilon > 3.9);

  TrainConfig bad = c;
  bad.dp.noise = 1.0;  // noise without a clip bound
  REQUIRE_THROWS_WITH(run_experiment(bad, "dpsgd", data, {}), Catch::Contains("--dp-clip"));
  bad = c;
  bad.dp.clip = 1.0;  // a clip bound but neither noise nor a target epsilon
  REQUIRE_THROWS_WITH(run_experiment(bad, "dpsgd", data, {}), Catch::Contains("--dp-noise"));
}

TEST_CASE("--coder: the same levels coded three ways give the same model and different bytes; choco+vsc is malcom with lambda 0",
          "[train][coder]") {
  TrainConfig c;
  c.nodes = 4;
  c.rounds = 12;
  c.train_samples = 2000;
  c.hidden = 16;
  const TrainingData data = load_data(c);
  auto run = [&](const std::string& algorithm, const std::string& coder, double lambda = 1e-4) {
    TrainConfig config = c;
    config.coder = coder;
    config.lambda = lambda;
    return run_experiment(config, algorithm, data, {});
  };
  const auto raw = run("choco", "raw");
  const auto elias = run("choco", "elias");
  const auto vsc = run("choco", "vsc");
  CHECK(raw.coder == "raw");
  CHECK(elias.coder == "elias");
  CAPTURE(raw.bits_per_param_per_round(), elias.bits_per_param_per_round(), vsc.bits_per_param_per_round());
  // Lossless coders of the same quantized residuals: the models are bit for bit the same.
  CHECK(elias.model_checksum == raw.model_checksum);
  CHECK(vsc.model_checksum == raw.model_checksum);
  CHECK(raw.bits_per_param_per_round() == Approx(10.0).epsilon(0.01));  // ⌈log2(2·256 + 1)⌉
  CHECK(elias.bits_per_param_per_round() < 0.6 * raw.bits_per_param_per_round());
  CHECK(vsc.bits_per_param_per_round() < elias.bits_per_param_per_round());
  // Coding alone (CHOCO + VSC) is Malcom-PSGD without its l1 step: the same models; Malcom's
  // support coding (SupportCoded) adds its changes (every coordinate once, in the first round)
  // and 5 bytes a message.
  const auto malcom0 = run("malcom", "", 0.0);
  CHECK(malcom0.coder == "vsc");
  CHECK(malcom0.model_checksum == vsc.model_checksum);
  CHECK(malcom0.last().test_accuracy == vsc.last().test_accuracy);
  CHECK(malcom0.last().bytes_sent > vsc.last().bytes_sent);
  CHECK(static_cast<double>(malcom0.last().bytes_sent) < 1.25 * static_cast<double>(vsc.last().bytes_sent));
  REQUIRE_THROWS_WITH(run("dpsgd", "elias"), Catch::Contains("does not apply to dpsgd"));

  // A checkpoint remembers its coder: another coder is another run.
  const decopt::examples::output::TemporaryFolder folder("decopt-coder-test");
  TrainConfig save = c;
  save.rounds = 4;
  save.checkpoint = folder.file("raw.ckpt");
  (void)run_experiment(save, "choco", data, {});
  TrainConfig resume = c;
  resume.resume = save.checkpoint;
  resume.coder = "elias";
  REQUIRE_THROWS_WITH(run_experiment(resume, "choco", data, {}), Catch::Contains("belongs to another run") &&
                                                                      Catch::Contains("coder=raw") && Catch::Contains("coder=elias"));
  resume.coder = "raw";
  CHECK(run_experiment(resume, "choco", data, {}).model_checksum == raw.model_checksum);
}

TEST_CASE("Evaluations: at least 20 by default, on the first --eval-samples test images, the last on the whole test set",
          "[train][evals]") {
  TrainConfig c;
  c.nodes = 4;
  c.rounds = 30;
  c.train_samples = 2000;
  c.hidden = 16;
  const TrainingData data = load_data(c);
  const auto run = run_experiment(c, "malcom", data, {});
  REQUIRE(run.rows.size() >= 20);
  const auto test_images = static_cast<long>(data.test.size());
  for (std::size_t i = 0; i + 1 < run.rows.size(); ++i) {
    CAPTURE(i);
    CHECK(run.rows[i].test_samples == 2000);
    CHECK(run.rows[i].round < run.rows[i + 1].round);
    CHECK(run.rows[i].simulated_seconds < run.rows[i + 1].simulated_seconds);  // the sim transport's clock
    CHECK(run.interval_bits_per_param(i) > 0);
  }
  CHECK(run.last().round == 30);
  CHECK(run.last().test_samples == test_images);
  // The last point is the whole test set's accuracy of the final models.
  CHECK(run.last().test_accuracy == Approx(run_experiment([&] {
                                             TrainConfig all = c;
                                             all.eval_samples = 0;
                                             return all;
                                           }(), "malcom", data, {}).last().test_accuracy));
  TrainConfig threads = c;
  threads.transport = "threads";
  threads.evals = 3;
  const auto threaded = run_experiment(threads, "malcom", data, {});
  CHECK(threaded.rows.size() == 3);
  CHECK(std::isnan(threaded.rows[0].simulated_seconds));  // no virtual clock off the sim transport
  CHECK(threaded.model_checksum == run.model_checksum);   // evaluations do not change the training
}

TEST_CASE("Sparse models cost fewer bits: bits per parameter per round fall as the l1 prox zeroes more weights, and s "
          "recomputed from every node's x-hat equals the incremental s",
          "[train][support]") {
  // Issue 15's must-show, on a short run of Malcom-PSGD (SupportCoded, patience 4) on 4 nodes.
  TrainConfig c = small_config(150);
  c.evals = 5;  // the last interval: the last 30 rounds, once the support has settled
  const TrainingData data = load_data(c);
  struct Point {
    double zeros, bits, error;
  };
  std::vector<Point> points;
  // At this size (12 730 parameters) lambda = 0.03 zeroes about 55% and 0.05 about 90% in 150 rounds.
  for (const double lambda : {0.0, 0.03, 0.05}) {
    TrainConfig config = c;
    config.lambda = lambda;
    const auto run = run_experiment(config, "malcom", data, {});
    points.push_back({run.sent_sparsity, run.interval_bits_per_param(run.rows.size() - 1), run.neighbor_sum_error});
    CAPTURE(lambda, run.last().sparsity, run.sent_sparsity, points.back().bits, run.neighbor_sum_error);
    // Every receiver applied exactly its sender's change of x-hat: the difference is the rounding
    // of 150 rounds of float increments, ~1e-6 (a lost or misapplied message moves s by at least a
    // quantization step, 1e-4 and more here).
    CHECK(run.neighbor_sum_error < 1e-5);
  }
  CHECK(points[0].zeros == 0);
  CHECK(points[1].zeros > points[0].zeros);
  CHECK(points[2].zeros > points[1].zeros);
  CHECK(points[2].zeros > 0.5);
  CHECK(points[1].bits < points[0].bits);
  CHECK(points[2].bits < points[1].bits);
  // Issue 15's target where the support has settled (at 0.03 it is still shrinking at round 150).
  CAPTURE(points[2].zeros, points[2].bits, points[0].bits);
  CHECK(points[2].bits <= (1 - 0.8 * points[2].zeros) * points[0].bits);
}

TEST_CASE("The l1 schedule: a warm-up longer than the run trains as lambda = 0, a ramp is another run, the same on "
          "every transport",
          "[train][support]") {
  const TrainConfig c = small_config(12);
  const TrainingData data = load_data(c);
  auto run = [&](double lambda, double warmup, double ramp, const std::string& transport = "sim") {
    TrainConfig config = c;
    config.lambda = lambda;
    config.lambda_warmup = warmup;
    config.lambda_ramp = ramp;
    config.transport = transport;
    return run_experiment(config, "malcom", data, {});
  };
  const auto dense = run(0.0, 0, 0);
  const auto constant = run(0.05, 0, 0);
  CHECK(run(0.05, 100, 0).model_checksum == dense.model_checksum);  // prox step 0: the identity
  const auto ramp = run(0.05, 0, 1);
  CHECK(ramp.model_checksum != dense.model_checksum);
  CHECK(ramp.model_checksum != constant.model_checksum);
  CHECK(ramp.last().sparsity < constant.last().sparsity);
  CHECK(run(0.05, 0, 1, "threads").model_checksum == ramp.model_checksum);
}
