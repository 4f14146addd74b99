// MpiTransport under mpirun -np 4: the same seed gives the same model bits as SimulatedNetwork
// (and so as ThreadNetwork); mismatched topologies or dimensions are ConfigErrors on every rank; a
// rank that stops sending ends its neighbours' runs with an error naming rank and round.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>
#include <decopt/mpi.hpp>

#include <cmath>
#include <vector>

using namespace decopt;

namespace {

template <class Step>
using Malcom = MalcomPSGD<Step>;

typename Malcom<SyncStep>::Compressor compressor() { return {Dense{}, DitheredQuantizer{64, Norm::Linf}, VectorSourceCoder{}}; }

void gradient(int i, std::span<const float> x, std::span<float> g) {
  for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k] - std::sin(static_cast<float>(3 * i + k));
}

/// Every node's model after `rounds` rounds, computed in this process on a SimulatedNetwork.
template <class Step>
std::vector<float> simulated_models(const Topology& topology, std::size_t d, int rounds, Options options) {
  std::vector<std::vector<float>> models(static_cast<std::size_t>(topology.size()), std::vector<float>(d, 0.0f));
  std::vector<std::span<float>> spans(models.begin(), models.end());
  Simulation<Malcom<Step>> sim(topology, spans, options, compressor(), L1Prox{1e-3});
  for (int t = 0; t < rounds; ++t) sim.round(gradient);
  std::vector<float> all;
  for (const auto& m : models) all.insert(all.end(), m.begin(), m.end());
  return all;
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

TEST_CASE("Ranks with different topologies or dimensions are refused on every rank", "[mpi]") {
  const int rank = MpiSession::rank();
  const auto topology = rank == 2 ? Topology::complete(4) : Topology::ring(4);
  REQUIRE_THROWS_WITH(MpiTransport(topology), Catch::Contains("different topologies"));
  MpiTransport transport(Topology::ring(4));
  REQUIRE_THROWS_WITH(transport.check_same_dimension(rank == 1 ? 11 : 10), Catch::Contains("different dimensions"));
  REQUIRE_NOTHROW(transport.check_same_dimension(10));
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
