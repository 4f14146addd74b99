// Transports: ThreadNetwork gives the same bits as SimulatedNetwork; a silent neighbour ends the
// run with an error naming the rank and round; a failing node aborts the others instead of
// hanging them; LinkModel arithmetic and bounds; every wait ends by the timeout; an aborted
// network is reset for a new run; a node thread that cannot start aborts the others; the
// optimizer checks the transport's neighbour list.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "transport/watchdog.hpp"

using namespace decopt;

namespace {

using Malcom = MalcomPSGD<>;
using MalcomOverlap = MalcomPSGD<OverlappedStep>;

Malcom::Compressor malcom_compressor() {
  return Malcom::Compressor(Dense{}, DitheredQuantizer{4, Norm::L2}, VectorSourceCoder{});
}

/// A node-dependent quadratic: ∇f_i(x) = x − c_i with c_i,k = sin(i + k).
void quadratic_gradient(int i, std::span<const float> x, std::span<float> g) {
  for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k] - std::sin(static_cast<float>(i) + static_cast<float>(k));
}

template <class Opt>
std::vector<std::vector<float>> run_simulated(const Topology& topology, int d, int rounds, Options options) {
  std::vector<std::vector<float>> models(static_cast<std::size_t>(topology.size()), std::vector<float>(d, 0.0f));
  std::vector<std::span<float>> spans(models.begin(), models.end());
  Simulation<Opt> sim(topology, spans, options, malcom_compressor(), L1Prox{1e-3});
  for (int t = 0; t < rounds; ++t) sim.round(quadratic_gradient);
  return models;
}

template <class Opt>
std::vector<std::vector<float>> run_threaded(const Topology& topology, int d, int rounds, Options options, LinkModel link = {}) {
  std::vector<std::vector<float>> models(static_cast<std::size_t>(topology.size()), std::vector<float>(d, 0.0f));
  ThreadNetwork network(topology, link);
  network.run([&](int rank) {
    Opt node(std::span<float>(models[static_cast<std::size_t>(rank)]), topology, network.endpoint(rank), options,
             malcom_compressor(), L1Prox{1e-3});
    for (int t = 0; t < rounds; ++t)
      node.step([rank](std::span<const float> x, std::span<float> g) { quadratic_gradient(rank, x, g); });
  });
  return models;
}

}  // namespace

TEST_CASE("ThreadNetwork and SimulatedNetwork give the same bits for the same seed", "[transport][determinism]") {
  const auto topology = GENERATE(Topology::ring(6), Topology::torus(3, 3), Topology::star(5));
  CAPTURE(topology.name());
  Options options;
  options.lr = 0.05;
  options.consensus_step = 0.5;
  options.seed = 99;
  const auto simulated = run_simulated<Malcom>(topology, 300, 25, options);
  const auto threaded = run_threaded<Malcom>(topology, 300, 25, options);
  CHECK(simulated == threaded);
  const auto simulated_overlap = run_simulated<MalcomOverlap>(topology, 300, 25, options);
  const auto threaded_overlap = run_threaded<MalcomOverlap>(topology, 300, 25, options, LinkModel{1e-4, 1e9});
  CHECK(simulated_overlap == threaded_overlap);
  CHECK(simulated_overlap != simulated);  // the two steps really differ
}

TEST_CASE("A neighbour that never sends ends the run with an error naming rank and round", "[transport][failure]") {
  const auto topology = Topology::ring(4);
  ThreadNetwork network(topology, LinkModel{}, std::chrono::milliseconds(200));
  std::vector<std::vector<float>> models(4, std::vector<float>(16, 0.0f));
  auto body = [&](int rank) {
    Malcom node(std::span<float>(models[static_cast<std::size_t>(rank)]), topology, network.endpoint(rank), Options{},
                malcom_compressor(), L1Prox{0.0});
    const int rounds = rank == 2 ? 3 : 10;  // node 2 goes silent after round 2
    for (int t = 0; t < rounds; ++t)
      node.step([rank](std::span<const float> x, std::span<float> g) { quadratic_gradient(rank, x, g); });
  };
  // Node 2's neighbours (1, 3) time out on round 3; node 0, one round ahead, may time out on
  // round 4 waiting for them at nearly the same moment. The first to time out is reported.
  REQUIRE_THROWS_WITH(network.run(body),
                      Catch::Matches(".*node [013] timed out after 0\\.2.* s waiting for round (3 from neighbour 2|"
                                     "4 from neighbour [13])"));
}

TEST_CASE("A failing node aborts its neighbours instead of hanging them", "[transport][failure]") {
  const auto topology = Topology::complete(5);
  ThreadNetwork network(topology, LinkModel{}, std::chrono::seconds(30));
  std::atomic<int> finished{0};
  auto body = [&](int rank) {
    std::vector<float> x(8, 1.0f);
    Malcom node(std::span<float>(x), topology, network.endpoint(rank), Options{}, malcom_compressor(), L1Prox{0.0});
    for (int t = 0; t < 20; ++t) {
      if (rank == 3 && t == 4) throw std::runtime_error("node 3 ran out of data");
      node.step([rank](std::span<const float> y, std::span<float> g) { quadratic_gradient(rank, y, g); });
    }
    ++finished;
  };
  const auto start = std::chrono::steady_clock::now();
  REQUIRE_THROWS_WITH(network.run(body), Catch::Contains("ran out of data"));
  CHECK(finished.load() == 0);
  // Correctness, not speed: the others were woken by the abort, long before the 30 s timeout.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(25));
}

TEST_CASE("LinkModel: transfer time, queueing on one link, validation", "[transport][link]") {
  const LinkModel model{0.01, 1e6};
  CHECK(model.transfer_seconds(500000) == Approx(0.5));
  LinkClock link;
  CHECK(link.send(0.0, 1000000, model) == Approx(1.01));
  CHECK(link.send(0.2, 1000000, model) == Approx(2.01));  // queued behind the first message
  CHECK(link.send(5.0, 0, model) == Approx(5.01));
  CHECK(LinkModel{}.is_instant());
  REQUIRE_THROWS_WITH((LinkModel{-1, 1}.validate()), Catch::Contains("latency"));
  REQUIRE_THROWS_WITH((LinkModel{0, 0}.validate()), Catch::Contains("bandwidth"));
}

TEST_CASE("SimulatedNetwork's virtual clock: arrival = departure + queueing + bytes/bandwidth + latency", "[transport][link]") {
  // Two nodes on one edge; node 0 posts 1000 bytes at t = 2 s over a 1000 B/s, 0.5 s link.
  SimulatedNetwork network(Topology::ring(2), LinkModel{0.5, 1000.0});
  auto& a = network.endpoint(0);
  auto& b = network.endpoint(1);
  const std::vector<std::byte> big(1000), small(10);
  std::vector<std::span<const std::byte>> inbox;
  a.advance(2.0);
  a.post(0, big);
  b.post(0, small);  // b posts at t = 0: 10 bytes arrive at 0.01 + 0.5
  a.collect(0, inbox);
  b.collect(0, inbox);
  CHECK(a.virtual_time() == Approx(2.0));  // b's small message arrived long before
  CHECK(b.virtual_time() == Approx(3.5));  // 2 + 1000/1000 + 0.5
  CHECK(network.virtual_time() == Approx(3.5));
  // A second message on a's link queues behind nothing (the link was free at 3.0).
  a.advance(1.0);  // a at 3.0
  a.post(1, big);
  b.post(1, small);
  b.collect(1, inbox);
  CHECK(b.virtual_time() == Approx(4.5));
}

TEST_CASE("The optimizer charges its rounds to the virtual clock of a SimulatedNetwork", "[transport][link]") {
  // A 1 s latency per message (virtual: nothing sleeps) must appear once per round on every
  // node's clock, for both step policies; without a link model the clock holds only the real
  // compute time of 10 small rounds, far below 10 s. (How much overlapping saves is a timing
  // question, measured by decopt-overlap-bench, not asserted here.)
  const auto topology = Topology::ring(4);
  auto virtual_seconds = [&](auto step_tag, LinkModel link) {
    using Opt = MalcomPSGD<decltype(step_tag)>;
    std::vector<std::vector<float>> models(4, std::vector<float>(2000, 0.0f));
    std::vector<std::span<float>> spans(models.begin(), models.end());
    Options options;
    options.local_steps = 2;
    Simulation<Opt> sim(topology, spans, options, malcom_compressor(), L1Prox{0.0}, link);
    for (int t = 0; t < 10; ++t) sim.round(quadratic_gradient);
    return sim.virtual_time();
  };
  CHECK(virtual_seconds(SyncStep{}, LinkModel{}) < 10.0);
  CHECK(virtual_seconds(SyncStep{}, LinkModel{1.0, 1e12}) >= 10.0);
  CHECK(virtual_seconds(OverlappedStep{}, LinkModel{1.0, 1e12}) >= 10.0);
}

TEST_CASE("LinkModel validation bounds latency and bandwidth; clock conversion saturates", "[transport][link]") {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // A latency past a day (1e7 s, 1e12 s) or a bandwidth below 1 B/s used to pass and then
  // overflow the seconds -> nanoseconds conversion of ThreadNetwork: undefined, in practice an
  // instant delivery.
  for (double latency : {1e7, 86400.5, 1e12, inf, nan}) {
    CAPTURE(latency);
    REQUIRE_THROWS_WITH((LinkModel{latency, inf}.validate()), Catch::Contains("latency") && Catch::Contains("86400"));
    REQUIRE_THROWS_AS(ThreadNetwork(Topology::ring(2), LinkModel{latency, inf}), ConfigError);
    REQUIRE_THROWS_AS(SimulatedNetwork(Topology::ring(2), LinkModel{latency, inf}), ConfigError);
  }
  for (double bandwidth : {0.5, 1e-9, -1.0, nan}) {
    CAPTURE(bandwidth);
    REQUIRE_THROWS_WITH((LinkModel{0, bandwidth}.validate()), Catch::Contains("bandwidth") && Catch::Contains(">= 1 byte/s"));
  }
  REQUIRE_NOTHROW(LinkModel{86400, 1.0}.validate());
  REQUIRE_NOTHROW(LinkModel{0, inf}.validate());
  REQUIRE_THROWS_WITH(ThreadNetwork(Topology::ring(2), LinkModel{}, std::chrono::milliseconds(0)), Catch::Contains("timeout"));
  REQUIRE_THROWS_WITH(ThreadNetwork(Topology::ring(2), LinkModel{}, std::chrono::hours(24 * 366)), Catch::Contains("timeout"));

  // A queue of slow links can still reach any arrival time: the conversion saturates.
  using std::chrono::seconds;
  CHECK(detail::saturated_clock_duration(1.5) == std::chrono::milliseconds(1500));
  CHECK(detail::saturated_clock_duration(0.0) == seconds(0));
  CHECK(detail::saturated_clock_duration(-3.0) == seconds(0));
  for (double huge : {1e9, 2e9, 1e300, inf, nan}) {
    CAPTURE(huge);
    CHECK(detail::saturated_clock_duration(huge) == seconds(1'000'000'000));
  }
}

TEST_CASE("ThreadNetwork: a link slower than the timeout ends collect by the timeout, naming rank, neighbour and round",
          "[transport][link][failure]") {
  // decopt-train --latency-ms 1e7 --timeout 2 used to hang: collect waited for the modelled
  // arrival (10^4 s away) without looking at its deadline. The watchdog fails the test on a hang.
  auto network = std::make_shared<ThreadNetwork>(Topology::ring(2), LinkModel{1e4, std::numeric_limits<double>::infinity()},
                                                 std::chrono::milliseconds(300));
  const auto start = std::chrono::steady_clock::now();
  const auto outcome = watchdog::returns_within(std::chrono::seconds(20), [network] {
    network->run([network](int rank) {
      auto& endpoint = network->endpoint(rank);
      const std::vector<std::byte> message(10);
      std::vector<std::span<const std::byte>> inbox;
      endpoint.post(0, message);
      endpoint.collect(0, inbox);
    });
  });
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(outcome.threw);
  CHECK_THAT(outcome.message, Catch::Matches(".*node [01] timed out after 0\\.3.* s waiting for round 0 from "
                                                        "neighbour [01]: its message is still in transit.*"));
  CHECK(elapsed >= 0.3);  // the timeout was honoured, not an instant delivery
}

TEST_CASE("ThreadNetwork::reset makes an aborted network usable; nodes reloaded from a checkpoint continue bit for bit",
          "[transport][failure][reset]") {
  const auto topology = Topology::ring(4);
  Options options;
  options.lr = 0.05;
  options.consensus_step = 0.5;
  options.seed = 7;
  const auto straight = run_threaded<Malcom>(topology, 40, 6, options);

  ThreadNetwork network(topology, LinkModel{}, std::chrono::seconds(30));
  std::vector<std::vector<float>> models(4, std::vector<float>(40, 0.0f));
  std::vector<Malcom> nodes;
  for (int i = 0; i < 4; ++i)
    nodes.emplace_back(std::span<float>(models[static_cast<std::size_t>(i)]), topology, network.endpoint(i), options,
                       malcom_compressor(), L1Prox{1e-3});
  auto rounds = [&](int count, int failing_rank) {
    return [&, count, failing_rank](int rank) {
      for (int t = 0; t < count; ++t) {
        if (rank == failing_rank && t == 1) throw std::runtime_error("node 3 ran out of data");
        nodes[static_cast<std::size_t>(rank)].step(
            [rank](std::span<const float> x, std::span<float> g) { quadratic_gradient(rank, x, g); });
      }
    };
  };
  network.run(rounds(2, -1));
  std::vector<std::vector<std::byte>> saved(4);
  for (int i = 0; i < 4; ++i) nodes[static_cast<std::size_t>(i)].save_state(saved[static_cast<std::size_t>(i)]);

  REQUIRE_THROWS_WITH(network.run(rounds(4, 3)), Catch::Contains("ran out of data"));
  REQUIRE(network.aborted());
  // Node 0 was aborted mid-round — waiting for node 3's round 3, or, if it lagged, still for a
  // round-2 message — so it is poisoned, and says so.
  REQUIRE_THROWS_WITH(nodes[0].step([](std::span<const float>, std::span<float> g) { std::fill(g.begin(), g.end(), 0.0f); }),
                      Catch::Matches("decopt: node 0 was left inconsistent by an exception in round [23] \\(.*network "
                                     "aborted: node 3 failed: node 3 ran out of data\\); reload a checkpoint with "
                                     "load_state\\(\\) to continue"));
  // An aborted network refuses a new run at once rather than aborting its nodes mid-round.
  REQUIRE_THROWS_WITH(network.run(rounds(1, -1)), Catch::Contains("reset()"));

  network.reset();
  REQUIRE_FALSE(network.aborted());
  for (int i = 0; i < 4; ++i) nodes[static_cast<std::size_t>(i)].load_state(saved[static_cast<std::size_t>(i)]);
  network.run(rounds(4, -1));
  CHECK(models == straight);
}

TEST_CASE("ThreadNetwork::run: a node thread that cannot be started aborts the started nodes instead of leaving them waiting",
          "[transport][failure][threads]") {
  // With a 60 s timeout the started nodes would otherwise wait a minute for the node that never
  // started; the watchdog allows 20 s.
  auto network = std::make_shared<ThreadNetwork>(Topology::ring(5), LinkModel{}, std::chrono::seconds(60));
  auto started = std::make_shared<std::atomic<int>>(0);
  auto finished = std::make_shared<std::atomic<int>>(0);
  ThreadStarter fail_after_three = [started, finished](std::function<void()> work) {
    if (started->load() == 3)
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again), "test: thread limit");
    ++*started;
    return std::jthread([work = std::move(work), finished] {
      work();
      ++*finished;
    });
  };
  const auto outcome = watchdog::returns_within(std::chrono::seconds(20), [network, fail_after_three] {
    network->run(
        [network](int rank) {
          std::vector<float> x(8, 1.0f);
          Malcom node(std::span<float>(x), network->topology(), network->endpoint(rank), Options{}, malcom_compressor(),
                      L1Prox{0.0});
          for (int t = 0; t < 5; ++t)
            node.step([rank](std::span<const float> y, std::span<float> g) { quadratic_gradient(rank, y, g); });
        },
        fail_after_three);
  });
  REQUIRE(outcome.threw);
  CHECK_THAT(outcome.message, Catch::Contains("could not start thread 4 of 5") &&
                                             Catch::Contains("test: thread limit") &&
                                             Catch::Contains("the 3 threads already started were stopped and joined"));
  CHECK(finished->load() == 3);  // joined before the error was thrown
  CHECK(network->aborted());
}

namespace {
/// A transport that cannot list its neighbours (no neighbor_ranks()): forwards to an endpoint.
struct UnlistedTransport {
  SimulatedNetwork::Endpoint* inner;
  [[nodiscard]] int rank() const { return inner->rank(); }
  [[nodiscard]] int degree() const { return inner->degree(); }
  void post(long round, std::span<const std::byte> message) { inner->post(round, message); }
  void collect(long round, std::vector<std::span<const std::byte>>& inbox) { inner->collect(round, inbox); }
};
}  // namespace

TEST_CASE("Endpoints list their neighbours; the optimizer refuses a transport wired to other neighbours of the same degree",
          "[transport][neighbours]") {
  const auto ring = Topology::ring(4);                                                  // node 0: {1, 3}
  const auto relabelled = Topology::from_edges(4, {{0, 2}, {2, 1}, {1, 3}, {3, 0}});  // also a 4-cycle; node 0: {2, 3}
  SimulatedNetwork simulated(relabelled);
  ThreadNetwork threaded(relabelled);
  CHECK(simulated.endpoint(0).neighbor_ranks() == std::vector<int>{2, 3});
  CHECK(threaded.endpoint(0).neighbor_ranks() == std::vector<int>{2, 3});
  CHECK(simulated.endpoint(2).neighbor_ranks() == std::vector<int>{0, 1});
  CHECK(TransportRef(simulated.endpoint(1)).neighbor_ranks() == std::vector<int>{2, 3});

  std::vector<float> x(8, 0.0f);
  const auto names_transport = Catch::Contains("transport of rank 0 exchanges with neighbours [2, 3]");
  const auto names_row = Catch::Contains("the topology gives it neighbours [1, 3]");  // (a matcher && keeps references)
  REQUIRE_THROWS_WITH(Malcom(std::span<float>(x), ring, simulated.endpoint(0)), names_transport && names_row);
  REQUIRE_THROWS_WITH(Malcom(std::span<float>(x), ring, threaded.endpoint(0)), names_transport && names_row);
  REQUIRE_NOTHROW(Malcom(std::span<float>(x), relabelled, simulated.endpoint(0)));

  // A transport that cannot say is trusted (the degree is still checked).
  UnlistedTransport unlisted{&simulated.endpoint(0)};
  CHECK_FALSE(TransportRef(unlisted).neighbor_ranks().has_value());
  REQUIRE_NOTHROW(Malcom(std::span<float>(x), ring, unlisted));
}

namespace {

/// Virtual seconds of `rounds` D-PSGD rounds (identity compressor, complete graph, γ = 1) under a
/// clock that charges `step_seconds` per gradient evaluation instead of the measured compute.
struct DeclaredClockRun {
  double virtual_seconds = 0;
  std::uint64_t bytes_sent = 0;
  std::vector<std::vector<float>> models;
};

template <class Step>
DeclaredClockRun run_declared_clock(int local_steps, double step_seconds, LinkModel link, int rounds) {
  const auto topology = Topology::complete(4);
  DeclaredClockRun run;
  run.models.assign(4, std::vector<float>(1000, 0.0f));
  std::vector<std::span<float>> spans(run.models.begin(), run.models.end());
  DeclaredCompute declared(topology.size());
  link.declared_compute = &declared;
  Options options;
  options.local_steps = local_steps;
  options.consensus_step = 1.0;
  Simulation<DPSGD<Step>> sim(topology, spans, options, {}, {}, link, 2);
  auto grad = [&](int i, std::span<const float> x, std::span<float> g) {
    declared.charge(i, step_seconds);
    quadratic_gradient(i, x, g);
  };
  for (int t = 0; t < rounds; ++t) sim.round(grad);
  run.virtual_seconds = sim.virtual_time();
  run.bytes_sent = sim.total_bytes_sent();
  return run;
}

}  // namespace

TEST_CASE("Declared compute: Local-SGD's round costs tau steps + one exchange, CoCoD's the larger of the two",
          "[transport][link][declared]") {
  // The deterministic clock of decopt-train --step-seconds: every gradient evaluation costs c
  // virtual seconds, the measured compute is ignored. A round of τ local steps then costs τc + e
  // when the exchange (e = bytes/bandwidth + latency) waits for the steps (SyncStep), and
  // max(τc, e) when it runs during them (OverlappedStep, CoCoD-SGD) — exactly, on every machine.
  const int rounds = 10, tau = 4;
  const double c = 0.002;
  const auto bytes_per_message = [&] {
    const auto probe = run_declared_clock<SyncStep>(tau, c, LinkModel{}, 1);
    return static_cast<double>(probe.bytes_sent) / 12.0;  // complete(4): 12 messages a round
  }();
  for (const double exchange : {0.012, 0.005}) {  // longer than the τ steps (0.008), then shorter
    const double latency = 0.001;
    const LinkModel link{latency, bytes_per_message / (exchange - latency)};
    const auto local_sgd = run_declared_clock<SyncStep>(tau, c, link, rounds);
    const auto cocod = run_declared_clock<OverlappedStep>(tau, c, link, rounds);
    CHECK(local_sgd.virtual_seconds == Approx(rounds * (tau * c + exchange)).epsilon(1e-9));
    CHECK(cocod.virtual_seconds == Approx(rounds * std::max(tau * c, exchange)).epsilon(1e-9));
    CHECK(cocod.virtual_seconds < local_sgd.virtual_seconds);
    CHECK(cocod.bytes_sent == local_sgd.bytes_sent);  // the same exchanges, only their timing differs
    // Deterministic: a second run charges the same virtual time, to the bit.
    CHECK(run_declared_clock<OverlappedStep>(tau, c, link, rounds).virtual_seconds == cocod.virtual_seconds);
  }
  // Per-step synchronous SGD (τ = 1) on an instant link: one step per round, nothing else.
  CHECK(run_declared_clock<SyncStep>(1, c, LinkModel{}, rounds).virtual_seconds == Approx(rounds * c).epsilon(1e-12));
}

TEST_CASE("Declared compute: bad charges, a wrong node count and a real-time network are refused",
          "[transport][link][declared]") {
  DeclaredCompute declared(4);
  REQUIRE_THROWS_AS(DeclaredCompute(0), ConfigError);
  REQUIRE_THROWS_WITH(declared.charge(0, -1.0), Catch::Contains("finite and >= 0"));
  REQUIRE_THROWS_WITH(declared.charge(0, std::numeric_limits<double>::quiet_NaN()), Catch::Contains("finite and >= 0"));
  REQUIRE_THROWS_WITH(declared.charge(4, 1.0), Catch::Contains("rank 4 outside [0, 4)"));
  declared.charge(2, 0.5);
  declared.charge(2, 0.25);
  CHECK(declared.take(2) == 0.75);
  CHECK(declared.take(2) == 0.0);
  LinkModel link;
  link.declared_compute = &declared;
  REQUIRE_THROWS_WITH(SimulatedNetwork(Topology::ring(3), link), Catch::Contains("declared_compute has 4 nodes, the topology 3"));
  REQUIRE_THROWS_WITH(ThreadNetwork(Topology::ring(4), link), Catch::Contains("runs in real time"));
}
