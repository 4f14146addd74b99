// decopt-train's experiment layer on the real Fashion-MNIST data: the claims (tagged
// [slow]: run by the Release suite, not under the sanitizers), determinism across runs and
// transports, and topology/node-count errors.
#include <catch2/catch.hpp>

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
  CHECK(malcom.rows.size() == 10);  // one evaluation per epoch
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
