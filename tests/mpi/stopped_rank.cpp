// mpi_stopped_rank MODE [TOKEN]: 4 ranks on a ring, 10 rounds of Malcom-PSGD, then a sum over the
// ranks; rank 2 stops itself (SIGSTOP, as `kill -STOP` would) — MODE "round": before round 5;
// "collective": before the sum; "end": at the end of the program, before MPI_Finalize. The other
// ranks must print their TransportError (check_stopped_rank.cmake checks which) and the job must
// end within the timeout (2 s) and a few seconds, as decopt-train's does. TOKEN only marks the
// processes, so that the check can find any left behind.
#include <decopt/decopt.hpp>
#include <decopt/mpi.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <span>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  using namespace decopt;
  MpiOptions options;
  options.timeout = std::chrono::seconds(2);
  MpiSession mpi(argc, argv, options);
  const std::string mode = argc > 1 ? argv[1] : "";
  const int rank = MpiSession::rank();
  auto stop_here = [&](const char* where) {
    if (rank == 2 && mode == where) std::raise(SIGSTOP);
  };
  try {
    const auto topology = Topology::ring(4);
    MpiTransport transport(topology, MPI_COMM_WORLD, options);
    std::vector<float> x(1000, 0.0f);
    MalcomPSGD<SyncStep> node(std::span<float>(x), topology, transport, Options{},
                              {Dense{}, DitheredQuantizer{16, Norm::Linf}, VectorSourceCoder{}}, L1Prox{0.0});
    for (int t = 0; t < 10; ++t) {
      if (t == 5) stop_here("round");
      node.step([&](std::span<const float> y, std::span<float> g) {
        for (std::size_t k = 0; k < y.size(); ++k) g[k] = y[k] - static_cast<float>(rank + 1);
      });
    }
    stop_here("collective");
    (void)mpi_sum(std::vector<double>{x[0]}, MPI_COMM_WORLD, options, "the other ranks' sum");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpi_stopped_rank: %s\n", e.what());
    mpi.end_job_after(e);
    return 1;
  }
  stop_here("end");
  return 0;
}
