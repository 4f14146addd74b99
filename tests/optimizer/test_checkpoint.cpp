// Save and load of the whole optimizer state; refusal of corrupted, foreign or forged checkpoints;
// the learning rate on load; the poisoned state after an exception mid-round and its recovery; the
// float drift of the incremental neighbour sum over very long runs.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace decopt;

namespace {

using Malcom = MalcomPSGD<>;

Malcom::Compressor compressor() { return {Dense{}, DitheredQuantizer{8, Norm::Linf}, VectorSourceCoder{}}; }

void gradient(int i, std::span<const float> x, std::span<float> g) {
  for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k] - (1.0f + std::cos(0.3f * static_cast<float>(i * 7 + k)));
}

struct Network {
  std::vector<std::vector<float>> models;
  std::vector<std::span<float>> spans;
  Simulation<Malcom> sim;
  Network(const Topology& t, int d, Options o)
      : models(static_cast<std::size_t>(t.size()), std::vector<float>(static_cast<std::size_t>(d), 0.0f)),
        spans(models.begin(), models.end()),
        sim(t, spans, o, compressor(), L1Prox{1e-3}) {}
  void rounds(int r) {
    for (int t = 0; t < r; ++t) sim.round(gradient);
  }
  std::vector<std::vector<std::byte>> save() const {
    std::vector<std::vector<std::byte>> states;
    for (int i = 0; i < sim.size(); ++i) sim.node(i).save_state(states.emplace_back());
    return states;
  }
};

Options options() {
  Options o;
  o.lr = 0.05;
  o.consensus_step = 0.4;
  o.momentum = 0.6;
  o.seed = 12;
  return o;
}

}  // namespace

TEST_CASE("A run stopped at round 20 and resumed from its checkpoint ends with the same bits as 40 rounds", "[checkpoint]") {
  const auto topology = Topology::torus(3, 3);
  Network straight(topology, 100, options());
  straight.rounds(40);

  Network first(topology, 100, options());
  first.rounds(20);
  const auto states = first.save();
  Network resumed(topology, 100, options());  // a fresh process: new buffers, new optimizers
  for (int i = 0; i < resumed.sim.size(); ++i) {
    const std::size_t used = resumed.sim.node(i).load_state(states[static_cast<std::size_t>(i)]);
    CHECK(used == states[static_cast<std::size_t>(i)].size());
  }
  CHECK(resumed.sim.node(4).round() == 20);
  resumed.rounds(20);
  CHECK(resumed.models == straight.models);
  CHECK(resumed.sim.node(0).totals().bytes_sent == straight.sim.node(0).totals().bytes_sent);
  CHECK(resumed.sim.node(0).totals().rounds == 40);
}

TEST_CASE("Corrupted, truncated or foreign checkpoints are refused, never loaded", "[checkpoint]") {
  const auto topology = Topology::ring(4);
  Network net(topology, 64, options());
  net.rounds(5);
  const auto states = net.save();
  const auto& good = states[1];
  Network target(topology, 64, options());
  auto& node = target.sim.node(1);
  const auto before = target.models[1];

  SECTION("every single-byte corruption is detected") {
    for (std::size_t at = 0; at < good.size(); at += 7) {
      auto bad = good;
      bad[at] ^= std::byte{0x20};
      CAPTURE(at);
      CHECK_THROWS_AS(node.load_state(bad), DecodeError);
    }
  }
  SECTION("truncation") {
    for (std::size_t keep : {std::size_t{0}, std::size_t{10}, std::size_t{24}, good.size() / 2, good.size() - 1}) {
      CAPTURE(keep);
      CHECK_THROWS_AS(node.load_state(std::span<const std::byte>(good).first(keep)), DecodeError);
    }
  }
  SECTION("another format version") {
    auto bad = good;
    bad[4] = std::byte{9};
    CHECK_THROWS_WITH(node.load_state(bad), Catch::Contains("version 9"));
    // Version 3 wrote SupportCoded's state without its patience and zero-round counters: a file of
    // it is refused naming both versions, not misread.
    bad[4] = std::byte{3};
    CHECK_THROWS_WITH(node.load_state(bad), Catch::Contains("version 3") && Catch::Contains("reads 4"));
    CHECK(checkpoint::kVersion == 4);
  }
  SECTION("another node, dimension, topology or pipeline") {
    CHECK_THROWS_WITH(node.load_state(states[2]), Catch::Contains("node 2"));
    Network wider(topology, 65, options());
    CHECK_THROWS_WITH(wider.sim.node(1).load_state(good), Catch::Contains("dimension 64"));
    Network other_graph(Topology::complete(4), 64, options());
    CHECK_THROWS_WITH(other_graph.sim.node(1).load_state(good), Catch::Contains("topology"));
    std::vector<float> x(64);
    SimulatedNetwork plain(topology);
    ChocoSGD<> choco(std::span<float>(x), topology, plain.endpoint(1));
    CHECK_THROWS_WITH(choco.load_state(good), Catch::Contains("pipeline"));
    Options no_momentum = options();
    no_momentum.momentum = 0;
    Network nm(topology, 64, no_momentum);
    CHECK_THROWS_WITH(nm.sim.node(1).load_state(good), Catch::Contains("momentum"));
  }
  CHECK(target.models[1] == before);  // nothing was half-loaded
  CHECK(node.round() == 0);
}

namespace {
/// max_k |Σ_j w_ij x̂_j − s_i| over all nodes (recomputed in double), and the scale max |Σ_j w_ij x̂_j|.
std::pair<double, double> neighbour_sum_drift(const Simulation<Malcom>& sim, std::size_t d) {
  double worst = 0, scale = 0;
  for (int i = 0; i < sim.size(); ++i) {
    const auto& node = sim.node(i);
    for (std::size_t k = 0; k < d; ++k) {
      double fresh = node.self_weight() * node.public_copy()[k];
      for (const Edge& e : node.neighbors()) fresh += e.weight * sim.node(e.node).public_copy()[k];
      worst = std::max(worst, std::abs(fresh - node.neighbor_sum()[k]));
      scale = std::max(scale, std::abs(fresh));
    }
  }
  return {worst, scale};
}
}  // namespace

TEST_CASE("Over 10^4 rounds on 64 nodes, periodic resynchronisation keeps s = sum_j w_ij xhat_j", "[checkpoint][drift]") {
  // s is updated by adding w_ij q_j every round; float rounding makes it drift from Σ_j w_ij x̂_j
  // linearly in the number of rounds. Without resynchronisation the drift after 10^4 rounds is
  // measured and must be visible (so this test can tell the two apart); with a resynchronisation
  // every 1000 rounds the worst drift — just before a resynchronisation — stays below 2e-4 relative,
  // and right after one it is at float rounding.
  const auto topology = Topology::torus(8, 8);
  Options o;
  o.lr = 0.02;
  o.consensus_step = 0.3;
  o.seed = 5;
  o.resync_every = 0;
  Network drifting(topology, 24, o);
  drifting.rounds(10000);
  const auto [free_drift, free_scale] = neighbour_sum_drift(drifting.sim, 24);
  CAPTURE(free_drift, free_scale);
  CHECK(free_scale > 0.5);
  CHECK(free_drift > 1e-4 * free_scale);

  o.resync_every = 1000;
  Network resynced(topology, 24, o);
  resynced.rounds(9999);  // 999 rounds since the last resynchronisation
  const auto [before, scale] = neighbour_sum_drift(resynced.sim, 24);
  resynced.rounds(1);  // round 10000 resynchronises
  const auto [after, scale_after] = neighbour_sum_drift(resynced.sim, 24);
  CAPTURE(before, after, scale);
  CHECK(resynced.sim.node(0).round() == 10000);
  CHECK(before <= 2e-4 * scale);
  CHECK(after <= 1e-6 * scale_after);
  // The resynchronisations are paid for in the byte counts: 10 × 4 neighbours × (12-byte header + 24 floats).
  CHECK(resynced.sim.node(0).totals().resync_bytes_sent == 10u * 4u * (12u + 24u * 4u));
  CHECK(drifting.sim.node(0).totals().resync_bytes_sent == 0u);
}

TEST_CASE("load_state keeps the configured learning rate unless asked to restore the saved one", "[checkpoint][lr]") {
  // load_state used to replace the lr silently by the saved one.
  const auto topology = Topology::ring(4);
  Network first(topology, 16, options());  // lr 0.05
  first.rounds(2);
  first.sim.node(3).set_learning_rate(0.02);  // a schedule moved node 3's lr
  const auto states = first.save();
  Options configured = options();
  configured.lr = 0.01;
  Network resumed(topology, 16, configured);
  resumed.sim.node(1).load_state(states[1]);
  CHECK(resumed.sim.node(1).options().lr == 0.01);
  CHECK(resumed.sim.node(1).round() == 2);
  resumed.sim.node(2).load_state(states[2], LoadOptions{.restore_learning_rate = true});
  CHECK(resumed.sim.node(2).options().lr == 0.05);
  resumed.sim.node(3).load_state(states[3], LoadOptions{.restore_learning_rate = true});
  CHECK(resumed.sim.node(3).options().lr == 0.02);
}

TEST_CASE("load_state is refused between begin_resync and finish_resync", "[checkpoint][resync]") {
  const auto topology = Topology::ring(4);
  Options o = options();
  o.resync_every = 2;
  SimulatedNetwork network(topology);
  std::vector<std::vector<float>> models(4, std::vector<float>(16, 0.0f));
  std::vector<Malcom> nodes;
  for (int i = 0; i < 4; ++i)
    nodes.emplace_back(std::span<float>(models[static_cast<std::size_t>(i)]), topology, network.endpoint(i), o, compressor(),
                       L1Prox{1e-3});
  auto round = [&] {
    for (int i = 0; i < 4; ++i)
      nodes[static_cast<std::size_t>(i)].begin_round(
          [i](std::span<const float> x, std::span<float> g) { gradient(i, x, g); });
    for (auto& node : nodes) node.finish_round();
  };
  round();
  std::vector<std::byte> saved;
  nodes[1].save_state(saved);
  round();
  REQUIRE(nodes[1].resync_due());
  for (auto& node : nodes) node.begin_resync();
  REQUIRE_THROWS_WITH(nodes[1].load_state(saved), Catch::Contains("between begin_resync and finish_resync") &&
                                                      Catch::Contains("node 1"));
  CHECK(nodes[1].round() == 2);
  for (auto& node : nodes) node.finish_resync();  // the resynchronisation completes untouched
  CHECK_FALSE(nodes[1].resync_due());
  CHECK(nodes[1].load_state(saved) == saved.size());  // and between rounds loading is fine
}

namespace {
/// `record` (one save_state record) with its payload changed by edit(payload, counters_offset)
/// and framed again with a correct length and checksum: what a forger, or a bug, would write.
/// counters_offset is where the 8-byte fields after the pipeline name begin.
std::vector<std::byte> forge(const std::vector<std::byte>& record,
                             const std::function<void(std::vector<std::byte>&, std::size_t)>& edit) {
  std::size_t used = 0;
  const auto original = checkpoint::open_record(record, used);
  std::vector<std::byte> payload(original.begin(), original.end());
  ByteReader reader(payload);
  (void)reader.get_le<std::uint64_t>();  // dimension
  (void)reader.get_le<std::int32_t>();   // rank
  (void)reader.get_le<std::uint64_t>();  // topology fingerprint
  (void)checkpoint::get_string(reader);  // pipeline
  edit(payload, reader.position());
  std::vector<std::byte> out;
  const std::size_t start = checkpoint::begin_record(out);
  out.insert(out.end(), payload.begin(), payload.end());
  checkpoint::end_record(out, start);
  return out;
}

/// The 8-byte counter fields in save_state's order.
enum Field { Round, Exchange, LastResync, Rounds, BytesSent, BytesReceived, WaitSeconds, ComputeSeconds, Skipped,
             ResyncBytes, Rng0, Rng1, Rng2, Rng3, LearningRate };

/// An edit for forge(): overwrites `field` with `value`.
template <class T>
std::function<void(std::vector<std::byte>&, std::size_t)> set(Field field, T value) {
  static_assert(sizeof(T) == 8);
  return [field, value](std::vector<std::byte>& payload, std::size_t at) {
    std::vector<std::byte> bytes;
    put_le<T>(bytes, value);
    std::copy(bytes.begin(), bytes.end(), payload.begin() + static_cast<std::ptrdiff_t>(at + 8 * field));
  };
}
}  // namespace

TEST_CASE("Forged checkpoint records with a valid checksum but impossible fields are refused", "[checkpoint][forged]") {
  const auto topology = Topology::ring(4);
  Network net(topology, 24, options());
  net.rounds(5);
  const auto good = net.save()[1];
  Network target(topology, 24, options());
  auto& node = target.sim.node(1);
  const auto before = target.models[1];
  // The forging itself is sound: an unedited record framed again loads.
  {
    Network check(topology, 24, options());
    REQUIRE(check.sim.node(1).load_state(forge(good, [](auto&, std::size_t) {})) > 0);
    REQUIRE(check.sim.node(1).round() == 5);
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto all_zero_rng = [](std::vector<std::byte>& payload, std::size_t at) {
    for (Field f : {Rng0, Rng1, Rng2, Rng3}) set<std::uint64_t>(f, 0)(payload, at);
  };
  const std::vector<std::pair<std::function<void(std::vector<std::byte>&, std::size_t)>, std::string>> cases = {
      {set<std::int64_t>(Round, -7), "round = -7"},
      {set<std::int64_t>(Exchange, 4), "exchange = 4"},
      {set<std::int64_t>(Exchange, 11), "exchange = 11"},
      {set<std::int64_t>(LastResync, 6), "last_resync = 6"},
      {set<std::int64_t>(LastResync, -1), "last_resync = -1"},
      {set<std::int64_t>(Rounds, 99), "totals.rounds = 99"},
      {set<std::int64_t>(Skipped, -1), "totals.skipped_rounds"},
      {set<std::uint64_t>(ResyncBytes, ~std::uint64_t{0}), "totals.resync_bytes_sent"},
      {set<double>(WaitSeconds, nan), "totals.wait_seconds"},
      {set<double>(ComputeSeconds, -1.0), "totals.compute_seconds = -1"},
      {all_zero_rng, "rng state is all zero"},
      {set<double>(LearningRate, 0.0), "lr"},
      {set<double>(LearningRate, nan), "lr"},
      {set<double>(LearningRate, 1e-46), "lr = 1e-46"},
  };
  for (const auto& [edit, expected] : cases) {
    CAPTURE(expected);
    const auto bad = forge(good, edit);
    REQUIRE_THROWS_AS(node.load_state(bad), DecodeError);
    REQUIRE_THROWS_WITH(node.load_state(bad), Catch::Contains("checkpoint field") && Catch::Contains(expected));
  }
  CHECK(target.models[1] == before);  // nothing was half-loaded
  CHECK(node.round() == 0);
  CHECK(node.options().lr == options().lr);
}

namespace {
/// How a FaultyTransport fails its collect.
enum class Fault { None, Garbage, Timeout };

/// Forwards to a SimulatedNetwork endpoint, but delivers garbage or times out when told to.
struct FaultyTransport {
  SimulatedNetwork::Endpoint* inner;
  Fault fault = Fault::None;
  std::vector<std::byte> garbage = std::vector<std::byte>(7, std::byte{0xa5});
  [[nodiscard]] int rank() const { return inner->rank(); }
  [[nodiscard]] int degree() const { return inner->degree(); }
  [[nodiscard]] std::vector<int> neighbor_ranks() const { return inner->neighbor_ranks(); }
  void post(long round, std::span<const std::byte> message) { inner->post(round, message); }
  void collect(long round, std::vector<std::span<const std::byte>>& inbox) {
    if (fault == Fault::Timeout) throw TransportError("node " + std::to_string(rank()) + " timed out (injected)");
    inner->collect(round, inbox);
    if (fault == Fault::Garbage)
      for (auto& message : inbox) message = garbage;
  }
};
}  // namespace

TEST_CASE("An exception mid-round poisons the node until load_state; a reloaded run continues bit for bit",
          "[checkpoint][poison]") {
  // Every such exception used to leave in_round_ set: the node refused begin_round, save_state
  // and load_state forever.
  const auto topology = Topology::ring(4);
  auto zero = [](std::span<const float>, std::span<float> g) { std::fill(g.begin(), g.end(), 0.0f); };

  SECTION("the gradient callback throws in a simulation: every node is poisoned, all reload and continue") {
    Network straight(topology, 32, options());
    straight.rounds(6);
    Network net(topology, 32, options());
    net.rounds(2);
    const auto saved = net.save();
    net.rounds(1);
    auto exploding = [](int i, std::span<const float> x, std::span<float> g) {
      gradient(i, x, g);
      if (i == 2) throw std::runtime_error("gradient exploded");
    };
    REQUIRE_THROWS_WITH(net.sim.round(exploding), Catch::Contains("gradient exploded"));
    for (int i = 0; i < 4; ++i) {
      CAPTURE(i);
      auto& node = net.sim.node(i);
      CHECK(node.inconsistent());
      const std::string poisoned = "node " + std::to_string(i) + " was left inconsistent by an exception in round 3";
      REQUIRE_THROWS_WITH(node.begin_round(zero), Catch::Contains(poisoned) && Catch::Contains("gradient exploded") &&
                                                      Catch::Contains("reload a checkpoint with load_state() to continue"));
      REQUIRE_THROWS_WITH(node.finish_round(), Catch::Contains(poisoned));
      std::vector<std::byte> out;
      REQUIRE_THROWS_WITH(node.save_state(out), Catch::Contains(poisoned));
      CHECK(out.empty());
    }
    for (int i = 0; i < 4; ++i) net.sim.node(i).load_state(saved[static_cast<std::size_t>(i)]);
    CHECK_FALSE(net.sim.node(2).inconsistent());
    net.rounds(4);
    CHECK(net.models == straight.models);
  }

  SECTION("a malformed message or a timeout in collect poisons the node that collects") {
    const Fault fault = GENERATE(Fault::Garbage, Fault::Timeout);
    SimulatedNetwork network(topology);
    std::vector<FaultyTransport> transports;
    for (int i = 0; i < 4; ++i) transports.push_back({&network.endpoint(i)});
    std::vector<std::vector<float>> models(4, std::vector<float>(16, 0.0f));
    std::vector<Malcom> nodes;
    for (int i = 0; i < 4; ++i)
      nodes.emplace_back(std::span<float>(models[static_cast<std::size_t>(i)]), topology,
                         transports[static_cast<std::size_t>(i)], options(), compressor(), L1Prox{1e-3});
    for (auto& node : nodes) node.begin_round(zero);
    for (auto& node : nodes) node.finish_round();
    std::vector<std::byte> saved;
    nodes[1].save_state(saved);
    transports[1].fault = fault;
    for (auto& node : nodes) node.begin_round(zero);
    if (fault == Fault::Garbage) {
      REQUIRE_THROWS_AS(nodes[1].finish_round(), DecodeError);
    } else {
      REQUIRE_THROWS_AS(nodes[1].finish_round(), TransportError);
    }
    REQUIRE_THROWS_WITH(nodes[1].begin_round(zero),
                        Catch::Contains("node 1 was left inconsistent by an exception in round 1") &&
                            Catch::Contains(fault == Fault::Garbage ? "decode error" : "timed out (injected)"));
    // Refused calls out of order do not poison: node 0 is healthy and says what is wrong.
    nodes[0].finish_round();
    REQUIRE_THROWS_WITH(nodes[0].finish_round(), Catch::Contains("finish_round called before begin_round"));
    CHECK_FALSE(nodes[0].inconsistent());
    // load_state clears the poison.
    transports[1].fault = Fault::None;
    REQUIRE(nodes[1].load_state(saved) == saved.size());
    CHECK_FALSE(nodes[1].inconsistent());
    CHECK(nodes[1].round() == 1);
    std::vector<std::byte> again;
    nodes[1].save_state(again);
    CHECK(again == saved);
  }
}
