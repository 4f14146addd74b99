// AsyncGossip (decopt/optimizer/async_gossip.hpp) and AsyncSimulation: k = 0 with equal speeds is
// SyncStep bit for bit (event-driven sim and threads); the event-driven simulation gives the same
// bits twice; the staleness, gradient age and queue length never exceed their bounds; s equals
// Σ_j w_ij x̂_j after the run drains; the nodes reach the optimum of quadratics; bad options and
// driving errors are ConfigErrors.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>
#include <decopt/optimizer/async_simulation.hpp>

#include <cmath>
#include <span>
#include <vector>

using namespace decopt;

namespace {

using Pipeline = Compressor<Dense, DitheredQuantizer, RawCoder>;
using AsyncNode = AsyncGossip<Pipeline, L1Prox>;
using SyncNode = DecentralizedOptimizer<Pipeline, L1Prox, SyncStep>;

Pipeline pipeline() { return Pipeline(Dense{}, DitheredQuantizer{16, Norm::L2}, RawCoder{}); }

/// ∇f_i(x) = x − c_i with c_i,k = sin(i + k): the optimum of (1/n) Σ_i f_i is the mean of the c_i.
float target(int i, std::size_t k) { return std::sin(static_cast<float>(i) + static_cast<float>(k)); }
void quadratic_gradient(int i, std::span<const float> x, std::span<float> g) {
  for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k] - target(i, k);
}

using Models = std::vector<std::vector<float>>;
Models zeros(int n, int d) { return Models(static_cast<std::size_t>(n), std::vector<float>(static_cast<std::size_t>(d), 0.0f)); }
std::vector<std::span<float>> spans_of(Models& models) { return {models.begin(), models.end()}; }

AsyncOptions async_options(long k) {
  AsyncOptions o;
  o.lr = 0.05;
  o.consensus_step = 0.5;
  o.seed = 7;
  o.max_staleness = k;
  return o;
}

Models run_sync(const Topology& topology, int d, long rounds, const AsyncOptions& o) {
  Models models = zeros(topology.size(), d);
  Simulation<SyncNode> sim(topology, spans_of(models), o.synchronous(), pipeline(), L1Prox{1e-3}, {}, 1);
  for (long t = 0; t < rounds; ++t) sim.round(quadratic_gradient);
  return models;
}

struct SimRun {
  Models models;
  std::vector<AsyncStats> stats;
  double neighbor_sum_error = 0;
  double virtual_time = 0;
};

SimRun run_async_sim(const Topology& topology, int d, long rounds, const AsyncOptions& o, const AsyncSpeedModel& speed,
                     LinkModel link = {}) {
  SimRun run{zeros(topology.size(), d), {}, 0, 0};
  const auto spans = spans_of(run.models);
  AsyncSimulation<AsyncNode> sim(topology, spans, o, speed, link, pipeline(), L1Prox{1e-3});
  sim.run(rounds / 2, quadratic_gradient);  // in two calls, as decopt-train's evaluations split a run
  sim.run(rounds, quadratic_gradient);
  run.virtual_time = sim.virtual_time();
  sim.drain();
  run.neighbor_sum_error = sim.neighbor_sum_error();
  for (int i = 0; i < sim.size(); ++i) run.stats.push_back(sim.node(i).stats());
  return run;
}

/// The mean over nodes and coordinates of |x_i,k − x*_k|, x* the mean of the c_i.
double distance_to_optimum(const Models& models) {
  const int n = static_cast<int>(models.size());
  double total = 0;
  for (std::size_t k = 0; k < models[0].size(); ++k) {
    double optimum = 0;
    for (int i = 0; i < n; ++i) optimum += target(i, k) / n;
    for (const auto& m : models) total += std::abs(m[k] - optimum);
  }
  return total / static_cast<double>(models.size() * models[0].size());
}

}  // namespace

TEST_CASE("AsyncGossip with k = 0 and equal speeds is SyncStep bit for bit (event-driven sim and threads)", "[async]") {
  const Topology ring = Topology::ring(5);
  const int d = 37;
  const long rounds = 60;
  const AsyncOptions o = async_options(0);
  const Models sync = run_sync(ring, d, rounds, o);
  SECTION("event-driven simulation, jittered speeds and link latency") {
    AsyncSpeedModel speed;
    speed.gradient_seconds = {1e-3, 2e-3, 3e-3, 1e-3, 5e-3};
    speed.jitter = 0.5;
    speed.seed = 3;
    LinkModel link;
    link.latency_seconds = 2e-3;
    const SimRun run = run_async_sim(ring, d, rounds, o, speed, link);
    CHECK(run.models == sync);
    for (const auto& s : run.stats) {
      CHECK(s.rounds == rounds);
      CHECK(s.gradient_steps == rounds);
      CHECK(s.max_neighbor_lag == 0);
      CHECK(s.max_gradient_age == 0);
    }
  }
  SECTION("ThreadNetwork, a thread per node") {
    Models models = zeros(ring.size(), d);
    ThreadNetwork network(ring);
    network.run([&](int r) {
      AsyncNode node(std::span<float>(models[static_cast<std::size_t>(r)]), ring, network.endpoint(r), o, pipeline(),
                     L1Prox{1e-3});
      for (long t = 0; t < rounds; ++t)
        node.step([r](std::span<const float> x, std::span<float> g) { quadratic_gradient(r, x, g); });
      CHECK(node.stats().max_neighbor_lag == 0);
      CHECK(node.stats().max_queued <= 1);  // 2k + 1
    });
    CHECK(models == sync);
  }
}

TEST_CASE("AsyncSimulation: one node 3x slower, k = 3: the same bits twice, bounds kept, s exact after drain", "[async]") {
  const Topology ring = Topology::ring(6);
  const int d = 29;
  const long rounds = 300;
  const long k = 3;
  AsyncSpeedModel speed = AsyncSpeedModel::one_slow(6, 2, 3.0, 1e-3, 2e-4);
  speed.jitter = 0.2;
  speed.seed = 11;
  LinkModel link;
  link.latency_seconds = 1e-4;
  const SimRun a = run_async_sim(ring, d, rounds, async_options(k), speed, link);
  const SimRun b = run_async_sim(ring, d, rounds, async_options(k), speed, link);
  CHECK(a.models == b.models);
  CHECK(a.virtual_time == b.virtual_time);
  for (std::size_t i = 0; i < a.stats.size(); ++i) {
    const AsyncStats& s = a.stats[i];
    CHECK(s.rounds == rounds);
    CHECK(s.max_neighbor_lag <= k);
    CHECK(s.max_gradient_age <= k);
    CHECK(s.max_queued <= static_cast<std::size_t>(2 * k + 1));
    if (i == 2) {
      // the slow node keeps gossiping and contributes fewer gradients (≈ a third)
      CHECK(s.gradient_steps < rounds / 2);
      CHECK(s.gradient_steps > rounds / 5);
      CHECK(s.max_gradient_age >= 1);
    } else {
      CHECK(s.gradient_steps > rounds * 9 / 10);
    }
  }
  // Not every round waited for the slow node: the others ran ahead of it.
  long lagged = 0;
  for (const auto& s : a.stats) lagged = std::max(lagged, s.max_neighbor_lag);
  CHECK(lagged >= 1);
  // s = w_ii x̂_i + Σ_j w_ij x̂_j after the drain, to float rounding of the incremental sums.
  double scale = 0;
  for (const auto& m : a.models)
    for (float v : m) scale = std::max(scale, static_cast<double>(std::abs(v)));
  CHECK(a.neighbor_sum_error <= 1e-5 * scale);
  // The synchronous step on the same speeds takes ≈ 3 times as long: the simulated clock shows the gain.
  const SimRun sync_like = run_async_sim(ring, d, rounds, async_options(0), speed, link);
  CHECK(a.virtual_time < 0.6 * sync_like.virtual_time);
}

TEST_CASE("AsyncSimulation: k = 1 with gradients up to G = 3 rounds old lets a 3x slower node keep pace", "[async]") {
  const Topology ring = Topology::ring(6);
  const long rounds = 200;
  const AsyncSpeedModel speed = AsyncSpeedModel::one_slow(6, 4, 3.0, 1e-3);
  AsyncOptions o = async_options(1);
  o.max_gradient_age = 3;
  const SimRun run = run_async_sim(ring, 13, rounds, o, speed);
  for (const auto& s : run.stats) {
    CHECK(s.max_neighbor_lag <= 1);
    CHECK(s.max_gradient_age <= 3);
    CHECK(s.max_queued <= 3u);
  }
  CHECK(run.stats[4].gradient_steps < rounds / 2);
  CHECK(run.stats[4].max_gradient_age >= 2);
  const SimRun sync_like = run_async_sim(ring, 13, rounds, async_options(0), speed);
  CHECK(run.virtual_time < 0.6 * sync_like.virtual_time);
  // G = 1 < F − 1: the slow node cannot keep pace, and the others wait for it.
  o.max_gradient_age = 1;
  const SimRun held = run_async_sim(ring, 13, rounds, o, speed);
  CHECK(held.virtual_time > 1.2 * run.virtual_time);
}

TEST_CASE("AsyncGossip reaches the optimum of quadratics (with a slow node, on the event-driven sim and on threads)",
          "[async]") {
  const Topology ring = Topology::ring(5);
  const int d = 16;
  const long rounds = 1500;
  AsyncOptions o = async_options(2);
  o.consensus_step = 0.8;
  SECTION("simulated, equal speeds with jitter") {
    AsyncSpeedModel speed;
    speed.jitter = 0.5;
    speed.seed = 5;
    const SimRun run = run_async_sim(ring, d, rounds, o, speed);
    CHECK(distance_to_optimum(run.models) < 0.05);
    // At a constant lr the nodes settle within O(lr) of each other, as the synchronous step does:
    // the asynchronous one stays as close as it.
    Models async_models = run.models;
    Models sync_models = run_sync(ring, d, rounds, o);
    const double async_spread = consensus_distance(spans_of(async_models));
    const double sync_spread = consensus_distance(spans_of(sync_models));
    CHECK(async_spread < 1.5 * sync_spread);
    CHECK(distance_to_optimum(run.models) < 1.5 * distance_to_optimum(sync_models) + 1e-3);
  }
  SECTION("ThreadNetwork") {
    Models models = zeros(ring.size(), d);
    ThreadNetwork network(ring);
    std::vector<double> error(5);
    network.run([&](int r) {
      AsyncNode node(std::span<float>(models[static_cast<std::size_t>(r)]), ring, network.endpoint(r), o, pipeline(),
                     L1Prox{1e-3});
      for (long t = 0; t < rounds; ++t)
        node.step([r](std::span<const float> x, std::span<float> g) { quadratic_gradient(r, x, g); });
      CHECK(node.stats().max_neighbor_lag <= 2);
      CHECK(node.stats().max_queued <= 5u);
      node.drain(rounds - 1, true);
    });
    CHECK(distance_to_optimum(models) < 0.05);
  }
}

TEST_CASE("AsyncGossip and AsyncSimulation refuse bad options and driving errors", "[async][config]") {
  const Topology ring = Topology::ring(4);
  std::vector<float> x(8, 0.0f);
  SimulatedNetwork network(ring);
  AsyncOptions o;
  o.max_staleness = -1;
  CHECK_THROWS_AS(AsyncNode(x, ring, network.endpoint(0), o), ConfigError);
  o.max_staleness = AsyncOptions::kMaxStaleness + 1;
  CHECK_THROWS_WITH(AsyncNode(x, ring, network.endpoint(0), o), Catch::Contains("max_staleness"));
  o.max_staleness = 1;
  o.max_gradient_age = -2;
  CHECK_THROWS_WITH(AsyncNode(x, ring, network.endpoint(0), o), Catch::Contains("max_gradient_age"));
  o.max_gradient_age = -1;
  o.lr = -1;
  CHECK_THROWS_WITH(AsyncNode(x, ring, network.endpoint(0), o), Catch::Contains("lr"));
  o.lr = 0.1;
  o.consensus_step = 1.5;
  CHECK_THROWS_AS(AsyncNode(x, ring, network.endpoint(0), o), ConfigError);
  o.consensus_step = 1;
  CHECK_THROWS_AS(AsyncNode(x, Topology::complete(4), network.endpoint(0), o), ConfigError);  // other neighbours

  AsyncNode node(x, ring, network.endpoint(0), async_options(0), pipeline(), L1Prox{1e-3});
  auto grad = [](std::span<const float> v, std::span<float> g) { quadratic_gradient(0, v, g); };
  CHECK_THROWS_AS(node.try_finish(), ConfigError);  // before post
  CHECK_THROWS_AS(node.apply_gradient(), ConfigError);  // none pending
  node.start_gradient(grad);
  CHECK_THROWS_AS(node.start_gradient(grad), ConfigError);  // already pending
  CHECK_THROWS_WITH(node.post(), Catch::Contains("apply_gradient"));  // due at k = 0
  node.apply_gradient();
  node.post();
  CHECK_THROWS_AS(node.post(), ConfigError);
  CHECK_FALSE(node.try_finish());  // the neighbours have not posted round 0
  CHECK_THROWS_WITH(node.finish(), Catch::Contains("cannot wait"));  // a simulated network cannot block

  std::vector<std::vector<float>> models(4, std::vector<float>(8, 0.0f));
  std::vector<std::span<float>> spans(models.begin(), models.end());
  AsyncSpeedModel speed;
  speed.gradient_seconds = {1e-3, 1e-3};
  CHECK_THROWS_WITH(AsyncSimulation<AsyncNode>(ring, spans, {}, speed), Catch::Contains("gradient_seconds"));
  speed = {};
  speed.jitter = 1;
  CHECK_THROWS_WITH(AsyncSimulation<AsyncNode>(ring, spans, {}, speed), Catch::Contains("jitter"));
  speed = {};
  speed.round_seconds = std::nan("");
  CHECK_THROWS_AS(AsyncSimulation<AsyncNode>(ring, spans, {}, speed), ConfigError);
}
