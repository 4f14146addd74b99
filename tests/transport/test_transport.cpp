// Transports: ThreadNetwork gives the same bits as SimulatedNetwork; a silent neighbour ends the
// run with an error naming the rank and round; a failing node aborts the others instead of
// hanging them; LinkModel arithmetic.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include <atomic>
#include <chrono>
#include <vector>

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
