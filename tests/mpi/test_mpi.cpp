// MpiTransport under mpirun -np 4: the same seed gives the same model bits as SimulatedNetwork
// (and so as ThreadNetwork); mismatched topologies or dimensions are ConfigErrors on every rank; a
// rank that stops sending ends its neighbours' runs with an error naming rank and round; the
// optimizer and its transport may be destroyed in either order, what was sent still arrives
// intact. require_same_settings names the first setting the ranks disagree on, on every rank, and
// times out when a rank does not take part. (A rank stopped by SIGSTOP: stopped_rank.cpp.)
// Per-peer delivery (post_to / collect_from) on a one-peer exponential schedule reaches only the
// round's peer; a silent peer's timeout names rank, peer and round. The scheduled optimizer
// (ScheduledMalcomPSGD over one-peer exponential and random matchings) gives the simulated bits.
// AsyVRSC-Distributed over MpiMasterWorkerChannel: 3 workers reach 1e-6 on the default portfolio
// problem with the same x on every rank; 1 worker (a 2-rank communicator) reproduces VRSC bit for
// bit; differing dimensions and a 1-rank communicator are ConfigErrors on every rank; silent peers
// end in a TransportError naming the rank.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>
#include <decopt/mpi.hpp>
#include <malloc.h>  // malloc_usable_size

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "compositional/problems.hpp"

using namespace decopt;

namespace {

template <class Step>
using Malcom = MalcomPSGD<Step>;

typename Malcom<SyncStep>::Compressor compressor() { return {Dense{}, DitheredQuantizer{64, Norm::Linf}, VectorSourceCoder{}}; }

void gradient(int i, std::span<const float> x, std::span<float> g) {
  for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k] - std::sin(static_cast<float>(3 * i + k));
}

/// Every node's model after `rounds` rounds of `Node`s, computed in this process on a SimulatedNetwork.
template <class Node>
std::vector<float> simulated(const Topology& topology, std::size_t d, int rounds, Options options,
                             typename Node::Compressor c, typename Node::Prox prox) {
  std::vector<std::vector<float>> models(static_cast<std::size_t>(topology.size()), std::vector<float>(d, 0.0f));
  std::vector<std::span<float>> spans(models.begin(), models.end());
  Simulation<Node> sim(topology, spans, options, c, prox);
  for (int t = 0; t < rounds; ++t) sim.round(gradient);
  std::vector<float> all;
  for (const auto& m : models) all.insert(all.end(), m.begin(), m.end());
  return all;
}

template <class Step>
std::vector<float> simulated_models(const Topology& topology, std::size_t d, int rounds, Options options) {
  return simulated<Malcom<Step>>(topology, d, rounds, options, compressor(), L1Prox{1e-3});
}

/// This rank's node run over MPI, then every rank's model gathered (rank order).
template <class Step>
std::vector<float> mpi_models(const Topology& topology, std::size_t d, int rounds, Options options) {
  MpiTransport transport(topology);
  std::vector<float> x(d, 0.0f);
  transport.check_same_dimension(d);
  Malcom<Step> node(std::span<float>(x), topology, transport, options, compressor(), L1Prox{1e-3});
  const int rank = transport.rank();
  for (int t = 0; t < rounds; ++t)
    node.step([rank](std::span<const float> y, std::span<float> g) { gradient(rank, y, g); });
  std::vector<float> all(d * static_cast<std::size_t>(topology.size()));
  MPI_Allgather(x.data(), static_cast<int>(d), MPI_FLOAT, all.data(), static_cast<int>(d), MPI_FLOAT, MPI_COMM_WORLD);
  return all;
}

}  // namespace

TEST_CASE("MPI gives the same bits as the simulated network, for both step policies", "[mpi]") {
  const auto topology = GENERATE(Topology::ring(4), Topology::complete(4), Topology::star(4));
  Options options;
  options.lr = 0.05;
  options.consensus_step = 0.5;
  options.seed = 77;
  options.resync_every = 10;  // exercise the resynchronisation exchange too
  CHECK(mpi_models<SyncStep>(topology, 3000, 25, options) == simulated_models<SyncStep>(topology, 3000, 25, options));
  CHECK(mpi_models<OverlappedStep>(topology, 3000, 25, options) ==
        simulated_models<OverlappedStep>(topology, 3000, 25, options));
}

TEST_CASE("MPI gives the same bits as the simulated network over a time-varying schedule", "[mpi][schedule]") {
  const auto schedule = GENERATE(TopologySchedule::one_peer_exponential(4), TopologySchedule::random_matchings(4, 3, 5));
  using Node = ScheduledMalcomPSGD<>;
  const Options options{.lr = 0.05, .consensus_step = 0.5, .seed = 78};
  constexpr std::size_t d = 3000;
  constexpr int rounds = 25;
  std::vector<std::vector<float>> models(4, std::vector<float>(d, 0.0f));
  std::vector<std::span<float>> spans(models.begin(), models.end());
  Simulation<Node> sim(schedule, spans, {.options = options, .threads = 1});
  for (int t = 0; t < rounds; ++t) sim.round(gradient);
  std::vector<float> expected;
  for (const auto& m : models) expected.insert(expected.end(), m.begin(), m.end());

  MpiTransport transport(schedule.transport_graph());
  std::vector<float> x(d, 0.0f);
  Node node(std::span<float>(x), schedule, transport, options);
  const int rank = transport.rank();
  long messages = 0;
  for (int t = 0; t < rounds; ++t)
    messages += node.step([rank](std::span<const float> y, std::span<float> g) { gradient(rank, y, g); }).messages_sent;
  std::vector<float> all(d * 4);
  MPI_Allgather(x.data(), static_cast<int>(d), MPI_FLOAT, all.data(), static_cast<int>(d), MPI_FLOAT, MPI_COMM_WORLD);
  CHECK(all == expected);
  CHECK(messages <= rounds);  // at most one peer per round (exactly one on one-peer exponential)
  CHECK(node.totals().bytes_sent == sim.node(rank).totals().bytes_sent);
}

TEST_CASE("Ranks with different topologies or dimensions are refused on every rank", "[mpi]") {
  const int rank = MpiSession::rank();
  const auto topology = rank == 2 ? Topology::complete(4) : Topology::ring(4);
  REQUIRE_THROWS_WITH(MpiTransport(topology), Catch::Contains("different topologies"));
  MpiTransport transport(Topology::ring(4));
  REQUIRE_THROWS_WITH(transport.check_same_dimension(rank == 1 ? 11 : 10), Catch::Contains("different dimensions"));
  REQUIRE_NOTHROW(transport.check_same_dimension(10));
}

TEST_CASE("MpiTransport delivers per peer: only the round's peer of a one-peer exponential schedule", "[mpi][peer]") {
  const auto schedule = TopologySchedule::one_peer_exponential(4);
  MpiTransport transport(schedule.union_graph());
  const int rank = transport.rank();
  static_assert(PeerTransport<MpiTransport>);
  REQUIRE(TransportRef(transport).delivers_per_peer());
  for (long t = 0; t < 7; ++t) {
    const int partner = schedule.at(t).neighbors(rank)[0].node;
    REQUIRE(partner == (rank ^ (1 << (t % 2))));
    const std::array<long, 3> sent{rank, partner, t};
    transport.post_to(t, partner, std::as_bytes(std::span(sent)));
    const auto got = transport.collect_from(t, partner);
    REQUIRE(got.size() == sizeof sent);
    std::array<long, 3> v{};
    std::memcpy(v.data(), got.data(), sizeof v);
    REQUIRE(v == std::array<long, 3>{partner, rank, t});
  }
  REQUIRE_THROWS_WITH(transport.post_to(0, rank ^ 3, std::span<const std::byte>{}), Catch::Contains("is not a neighbour"));
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("A silent peer's collect_from times out naming rank, peer and round", "[mpi][peer]") {
  const auto schedule = TopologySchedule::one_peer_exponential(4);
  MpiOptions quick;
  quick.timeout = std::chrono::milliseconds(300);
  MpiTransport transport(schedule.union_graph(), MPI_COMM_WORLD, quick);
  const int rank = transport.rank();
  const long rounds = rank == 2 ? 3 : 4;  // rank 2 goes silent after round 2; round 3 pairs it with 0
  std::string error;
  try {
    for (long t = 0; t < rounds; ++t) {
      const int partner = schedule.at(t).neighbors(rank)[0].node;
      const std::array<long, 1> m{t};
      transport.post_to(t, partner, std::as_bytes(std::span(m)));
      (void)transport.collect_from(t, partner);
    }
  } catch (const TransportError& e) {
    error = e.what();
  }
  if (rank == 0) CHECK_THAT(error, Catch::Contains("rank 0 timed out") && Catch::Contains("round 3 from neighbour (rank) 2"));
  else CHECK(error.empty());
  if (rank == 2) (void)transport.collect_from(3, 0);  // what rank 0 posted before timing out: leave nothing behind
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("A rank that stops sending ends its neighbours' runs with an error naming rank and round", "[mpi]") {
  const auto topology = Topology::ring(4);
  MpiOptions quick;
  quick.timeout = std::chrono::milliseconds(300);
  MpiTransport transport(topology, MPI_COMM_WORLD, quick);
  const int rank = transport.rank();
  std::vector<float> x(16, 0.0f);
  Malcom<SyncStep> node(std::span<float>(x), topology, transport, Options{}, compressor(), L1Prox{0.0});
  const int rounds = rank == 2 ? 3 : 10;  // rank 2 goes silent after round 2
  std::string error;
  try {
    for (int t = 0; t < rounds; ++t) node.step([rank](std::span<const float> y, std::span<float> g) { gradient(rank, y, g); });
  } catch (const TransportError& e) {
    error = e.what();
  }
  if (rank == 1 || rank == 3) CHECK_THAT(error, Catch::Contains("round 3 from neighbour (rank) 2"));
  if (rank == 2) CHECK(error.empty());
  if (rank == 0) CHECK_THAT(error, Catch::Contains("timed out") && Catch::Contains("round 4"));
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("MpiTransport lists its neighbours' ranks in topology order", "[mpi]") {
  const auto topology = Topology::star(4);
  const MpiTransport transport(topology);
  std::vector<int> expected;
  for (const Edge& e : topology.neighbors(transport.rank())) expected.push_back(e.node);
  CHECK(transport.neighbor_ranks() == expected);
  CHECK(transport.neighbor_ranks().size() == static_cast<std::size_t>(transport.degree()));
}

namespace {

/// Raw float32 messages: with d = 20 000 a message is 80 kB, above MPI's eager limits, so MPI reads
/// most of its bytes from the sender's buffer only when the receiver asks for the message. (This
/// program overwrites memory as it frees it: see operator delete at the end.)
using RawNode = DecentralizedOptimizer<Compressor<Dense, Identity, RawCoder>, NoProx, SyncStep>;

}  // namespace

TEST_CASE("The optimizer may be destroyed before or after its MpiTransport: what it sent arrives intact", "[mpi]") {
  const auto topology = Topology::ring(4);  // the neighbours of an even rank are odd, and the reverse
  const std::size_t d = 20000;
  const int rounds = 3;
  Options options;
  options.lr = 0.05;
  options.seed = 11;
  const auto expected = simulated<RawNode>(topology, d, rounds, options, {}, {});
  const int rank = MpiSession::rank();
  const bool optimizer_first = GENERATE(true, false);
  CAPTURE(optimizer_first);
  std::vector<float> x(d, 0.0f);
  auto grad = [rank](std::span<const float> y, std::span<float> g) { gradient(rank, y, g); };
  auto transport = std::make_unique<MpiTransport>(topology);
  auto node = std::make_unique<RawNode>(std::span<float>(x), topology, *transport, options);
  for (int t = 0; t + 1 < rounds; ++t) node->step(grad);
  if (rank % 2 == 0) {
    // The even ranks finish the last round while their last message is still unread: the odd
    // ranks ask for it only after the barrier, when the optimizer that encoded it is gone.
    node->step(grad);
    if (optimizer_first) {
      node.reset();  // its buffers are freed, and overwritten with 0xff
      MPI_Barrier(MPI_COMM_WORLD);
      transport.reset();  // its sends complete now: from its own copy, not the optimizer's freed buffer
    } else {
      transport.reset();  // waits until the odd ranks have read its last message
      node.reset();
    }
  } else {
    node->begin_round(grad);  // posts the last message, which the even ranks need to finish
    if (optimizer_first) MPI_Barrier(MPI_COMM_WORLD);
    CHECK_NOTHROW(node->finish_round());  // reads the even ranks' last messages
    node.reset();
    transport.reset();
  }
  // Bit for bit the simulated run: no byte of any message came from freed or overwritten memory.
  CHECK(std::equal(x.begin(), x.end(), expected.begin() + static_cast<std::ptrdiff_t>(d) * rank));
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("require_same_settings names the first setting the ranks disagree on, on every rank", "[mpi]") {
  const int rank = MpiSession::rank();
  std::vector<MpiSetting> settings{{"--rounds", "12"}, {"--levels", "256"}, {"--lr", "0.05"}};
  REQUIRE_NOTHROW(require_same_settings(settings));
  MpiOptions forever;  // the deadline saturates instead of overflowing the clock (and so expiring at once)
  forever.timeout = std::chrono::milliseconds::max();
  REQUIRE_NOTHROW(require_same_settings(settings, MPI_COMM_WORLD, forever));
  auto with = [&](std::size_t k, int odd_rank, const std::string& value) {
    auto s = settings;
    if (rank == odd_rank) s[k].second = value;
    return s;
  };
  CHECK_THROWS_WITH(require_same_settings(with(1, 2, "16")),
                    Catch::Equals("decopt: configuration error: ranks disagree on --levels: rank 0 has 256, rank 2 has 16"));
  // The first setting that differs is named, each distinct value with the lowest rank holding it.
  auto twice = with(2, 1, "0.1");
  if (rank >= 2) twice[0].second = "7";
  CHECK_THROWS_WITH(require_same_settings(twice),
                    Catch::Equals("decopt: configuration error: ranks disagree on --rounds: rank 0 has 12, rank 2 has 7"));
  // Rank 0 itself may be the odd one; a setting only some ranks have counts as missing elsewhere.
  CHECK_THROWS_WITH(require_same_settings(with(2, 0, "1e-3")),
                    Catch::Contains("ranks disagree on --lr: rank 0 has 1e-3, rank 1 has 0.05"));
  auto extra = settings;
  if (rank == 3) extra.emplace_back("--dp-clip", "1");
  CHECK_THROWS_WITH(require_same_settings(extra),
                    Catch::Contains("ranks disagree on --dp-clip: rank 0 has no --dp-clip, rank 3 has 1"));
}

TEST_CASE("require_same_settings times out naming this rank when a rank does not take part", "[mpi]") {
  const int rank = MpiSession::rank();
  const std::vector<MpiSetting> settings{{"--seed", "1"}};
  MpiOptions quick;
  quick.timeout = std::chrono::milliseconds(300);
  // A communicator of its own, for the reduction the ranks give up on; never freed, as an abandoned
  // collective's communicator must not be (Open MPI would still progress it).
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  if (rank != 3)
    CHECK_THROWS_WITH(require_same_settings(settings, comm, quick),
                      Catch::Contains("rank " + std::to_string(rank) + " timed out after 0.3") &&
                          Catch::Contains("waiting for the other ranks to compare the run's settings"));
  MPI_Barrier(MPI_COMM_WORLD);
  // Rank 3 comes late: its reduction completes the one the others gave up on (same settings).
  if (rank == 3) CHECK_NOTHROW(require_same_settings(settings, comm, quick));
  MPI_Barrier(MPI_COMM_WORLD);
}

namespace {

namespace cmp = decopt::compositional;

/// True on every rank when `x` has the same bits on every rank of `comm` (collective).
bool same_on_every_rank(const cmp::Vector& x, MPI_Comm comm) {
  int size = 0;
  MPI_Comm_size(comm, &size);
  const int d = static_cast<int>(x.size());
  std::vector<double> all(static_cast<std::size_t>(d * size));
  MPI_Allgather(x.data(), d, MPI_DOUBLE, all.data(), d, MPI_DOUBLE, comm);
  for (int r = 1; r < size; ++r)
    if (std::memcmp(all.data(), all.data() + r * d, sizeof(double) * static_cast<std::size_t>(d)) != 0) return false;
  return true;
}

}  // namespace

TEST_CASE("AsyVRSC-Distributed over MPI with 3 workers converges to 1e-6, the same x on every rank",
          "[mpi][compositional]") {
  const cmp::PortfolioProblem problem;
  cmp::Vector x = cmp::Vector::Zero(problem.dimension());
  const auto o = cmp::testing::converging_options(3);
  const auto r = cmp::optimize_mpi(cmp::AsyVRSCDistributed(o), problem, x, problem.optimal_value());
  cmp::testing::check_converged(problem, x, r, o);
  CHECK(same_on_every_rank(x, MPI_COMM_WORLD));
  // The stats are rank 0's on every rank too.
  const std::array<double, 3> mine{static_cast<double>(r.epochs), static_cast<double>(r.dropped_updates), r.seconds};
  std::array<double, 3> low{}, high{};
  MPI_Allreduce(mine.data(), low.data(), 3, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(mine.data(), high.data(), 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  CHECK(low == high);
}

TEST_CASE("AsyVRSC-Distributed over MPI with one worker reproduces VRSC bit for bit", "[mpi][compositional]") {
  const int rank = MpiSession::rank();
  MPI_Comm pair = MPI_COMM_NULL;  // ranks 0 and 1; the others idle
  MPI_Comm_split(MPI_COMM_WORLD, rank < 2 ? 0 : MPI_UNDEFINED, rank, &pair);
  if (pair != MPI_COMM_NULL) {
    const auto problem = cmp::testing::small_problem();
    const cmp::VrscOptions o = cmp::testing::short_vrsc_options();
    cmp::Vector x1 = cmp::Vector::Zero(problem.dimension()), x2 = x1;
    const auto r1 = cmp::VRSC(o).optimize(problem, x1, problem.optimal_value());
    const auto r2 = cmp::optimize_mpi(cmp::AsyVRSCDistributed(cmp::testing::one_worker_options(o)), problem, x2,
                                      problem.optimal_value(), pair);
    CHECK(x1 == x2);  // on the master and, broadcast, on the worker
    CHECK(r2.dropped_updates == 0);
    CHECK(r2.max_staleness == 0);
    CHECK(r2.updates == r1.updates);
    REQUIRE(r1.history.size() == r2.history.size());
    for (std::size_t e = 0; e < r1.history.size(); ++e) CHECK(r1.history[e].objective == r2.history[e].objective);
    MPI_Comm_free(&pair);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("AsyVRSC-Distributed over MPI refuses differing dimensions and one rank, on every rank",
          "[mpi][compositional]") {
  const int rank = MpiSession::rank();
  REQUIRE_THROWS_WITH(cmp::MpiMasterWorkerChannel(rank == 2 ? 11 : 10),
                      Catch::Contains("ranks' problems have different dimensions") && Catch::Contains("from 10 to 11"));
  const auto problem = cmp::testing::small_problem(rank == 3 ? 21 : 20);
  cmp::Vector x = cmp::Vector::Zero(problem.dimension());
  CHECK_THROWS_AS(cmp::optimize_mpi(cmp::AsyVRSCDistributed(), problem, x), ConfigError);
  // x of the wrong size on one worker only: every rank fails, naming it.
  const auto same = cmp::testing::small_problem();
  cmp::Vector y = cmp::Vector::Zero(rank == 1 ? 19 : 20);
  REQUIRE_THROWS_WITH(cmp::optimize_mpi(cmp::AsyVRSCDistributed(), same, y),
                      Catch::Contains("x has 19 entries on rank 1"));
  CHECK_THROWS_WITH(cmp::MpiMasterWorkerChannel(10, MPI_COMM_SELF),
                    Catch::Contains("has 1 rank") && Catch::Contains("at least 2 ranks"));
  CHECK_THROWS_AS(cmp::optimize_mpi(cmp::AsyVRSCDistributed(), same, x, std::nullopt, MPI_COMM_SELF), ConfigError);
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_CASE("MpiMasterWorkerChannel: silent peers time out naming the rank; a worker's close ends the run",
          "[mpi][compositional]") {
  MpiOptions quick;
  quick.timeout = std::chrono::milliseconds(300);
  cmp::ModelMessage m;
  cmp::UpdateMessage u;
  {  // the workers stay silent: the master times out
    cmp::MpiMasterWorkerChannel channel(4, MPI_COMM_WORLD, quick);
    REQUIRE(channel.workers() == 3);
    if (channel.is_master())
      CHECK_THROWS_WITH(channel.receive_update(u), Catch::Contains("rank 0 (master) timed out after 0.3") &&
                                                       Catch::Contains("waiting for an update from any worker"));
    MPI_Barrier(MPI_COMM_WORLD);
  }  // the destructors' end handshake leaves nothing in flight
  {  // the master stays silent: the workers time out, and then their close() ends the master's wait
    cmp::MpiMasterWorkerChannel channel(4, MPI_COMM_WORLD, MpiSession::rank() == 0 ? MpiOptions{} : quick);
    if (!channel.is_master())
      CHECK_THROWS_WITH(channel.pull_model(channel.worker(), m),
                        Catch::Contains("(worker " + std::to_string(channel.worker()) + ") timed out") &&
                            Catch::Contains("a model from the master (rank 0)"));
    MPI_Barrier(MPI_COMM_WORLD);
    if (channel.is_master()) CHECK_FALSE(channel.receive_update(u));
  }
  {
    cmp::MpiMasterWorkerChannel channel(2);
    m.x = {1.0, 2.0};
    m.snapshot = {9.0};
    if (channel.is_master()) {
      for (int w = 0; w < 3; ++w) channel.send_model(w, m);
      m.version = 1;
      m.x = {3.0, 4.0};
      m.snapshot.clear();
      for (int w = 0; w < 3; ++w) channel.send_model(w, m);
      MPI_Barrier(channel.communicator());  // both models posted
      int received = 0;
      while (channel.receive_update(u)) {  // until worker 1 closes
        CHECK(u.direction == std::vector<double>{0.5, static_cast<double>(u.worker)});
        ++received;
      }
      CHECK(channel.closed());
      CHECK(received <= 2);
    } else {
      cmp::ModelMessage got;
      MPI_Barrier(channel.communicator());
      int arrived = 0;  // let both small (eager) messages land, so one pull sees both
      while (!arrived) MPI_Iprobe(0, cmp::MpiMasterWorkerChannel::kModelTag, channel.communicator(), &arrived, MPI_STATUS_IGNORE);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      REQUIRE(channel.pull_model(channel.worker(), got));
      CHECK(got.version == 1);
      CHECK(got.x == std::vector<double>{3.0, 4.0});
      CHECK(got.snapshot == std::vector<double>{9.0});  // the older pending snapshot is kept
      if (channel.worker() == 1) {
        channel.close();
      } else {
        u.worker = channel.worker();
        u.direction = {0.5, static_cast<double>(u.worker)};
        channel.push_update(u);
        CHECK_FALSE(channel.pull_model(channel.worker(), got));  // the master's "end"
      }
      CHECK_THROWS_AS(channel.send_model(0, m), ConfigError);  // the master's call
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// Memory is overwritten (with 0xff bytes, a NaN as float32) as this program frees it, as a busy
// program would soon reuse it: bytes MPI reads from a freed buffer arrive as garbage, never intact
// by luck. The destruction-order test above depends on it. (MPI itself allocates with malloc.)
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n == 0 ? 1 : n); }
void* operator new(std::size_t n) {
  if (void* p = operator new(n, std::nothrow)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  std::memset(p, 0xff, malloc_usable_size(p));
  __asm__ volatile("" : : "r"(p) : "memory");  // the stores stay: not dead because free follows
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }

int main(int argc, char** argv) {
  MpiSession session(argc, argv);
  Catch::Session catch_session;
  // Only rank 0 reports; every rank runs every test (they are collective).
  if (MpiSession::rank() != 0) catch_session.configData().outputFilename = "%debug";
  const int failures = catch_session.run(argc, argv);
  int any = failures, total = 0;
  MPI_Allreduce(&any, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  return total == 0 ? 0 : 1;
}
