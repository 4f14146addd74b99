// The threaded Simulation: the same bits for every thread count, the gradient callback really runs
// concurrently for different nodes (and serially, in node order, on one thread), a node's exception
// reaches the caller naming the node, and the pool under it (detail::IndexPool) runs every index
// once, stays usable after a job threw, and does not wait for workers the OS refused to start.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "optimizer/problems.hpp"

using namespace decopt;
using decopt::testing::SplitProblem;

namespace {

/// The bits of every float of every node's model, public copy x̂ and neighbour sum s.
template <class Sim>
std::vector<std::uint32_t> state_bits(const Sim& sim) {
  std::vector<std::uint32_t> bits;
  auto append = [&bits](std::span<const float> v) {
    for (float f : v) bits.push_back(std::bit_cast<std::uint32_t>(f));
  };
  for (int i = 0; i < sim.size(); ++i) {
    append(sim.node(i).parameters());
    append(sim.node(i).public_copy());
    append(sim.node(i).neighbor_sum());
  }
  return bits;
}

struct Run {
  std::vector<std::uint32_t> bits;
  std::vector<std::uint64_t> bytes_sent;  // per round
  std::vector<std::uint64_t> mean_loss_bits;
  std::uint64_t resync_bytes = 0;
};

/// Seven rounds with a resynchronisation every third round on `threads` threads. The gradient is
/// the least-squares gradient of node i's data plus N(0, 0.01²) noise from node i's own Rng, so a
/// node whose calls were reordered or mixed with another node's would draw different noise.
template <class Opt>
Run run_on(int threads, typename Opt::Compressor compressor, typename Opt::Prox prox = {}) {
  const int n = 7, d = 40;
  const auto problem = decopt::testing::make_problem(SplitProblem::Loss::LeastSquares, n, 25, d, 11);
  std::vector<std::vector<float>> models(n, std::vector<float>(d, 0.0f));
  std::vector<std::span<float>> spans(models.begin(), models.end());
  Options options;
  options.lr = 0.05;
  options.consensus_step = 0.5;
  options.resync_every = 3;
  options.seed = 5;
  Simulation<Opt> sim(Topology::ring(7), spans, options, compressor, prox, LinkModel{}, threads);
  REQUIRE(sim.threads() == threads);
  std::vector<Rng> noise;
  for (int i = 0; i < n; ++i) noise.push_back(Rng::derive(99, {static_cast<std::uint64_t>(i)}));
  auto grad = [&](int i, std::span<const float> x, std::span<float> g) {
    problem.gradient_into(i, x, g);
    for (float& v : g) v += static_cast<float>(0.01 * noise[static_cast<std::size_t>(i)].normal());
    double loss = 0;
    for (float v : x) loss += static_cast<double>(v) * v;
    return loss;
  };
  Run run;
  for (int t = 0; t < 7; ++t) {
    const auto stats = sim.round(grad);
    run.bytes_sent.push_back(stats.bytes_sent);
    run.mean_loss_bits.push_back(std::bit_cast<std::uint64_t>(stats.mean_loss));
  }
  run.bits = state_bits(sim);
  for (int i = 0; i < n; ++i) run.resync_bytes += sim.node(i).totals().resync_bytes_sent;
  return run;
}

template <class Opt>
void check_same_bits_for_every_thread_count(typename Opt::Compressor compressor,
                                            typename Opt::Prox prox = {}) {
  const Run serial = run_on<Opt>(1, compressor, prox);
  REQUIRE(serial.resync_bytes > 0);  // the runs include resynchronisation phases
  for (int threads : {2, 3}) {
    INFO("threads = " << threads);
    const Run threaded = run_on<Opt>(threads, compressor, prox);
    CHECK(threaded.bits == serial.bits);
    CHECK(threaded.bytes_sent == serial.bytes_sent);
    CHECK(threaded.mean_loss_bits == serial.mean_loss_bits);
    CHECK(threaded.resync_bytes == serial.resync_bytes);
  }
}

}  // namespace

TEST_CASE("Threaded Simulation: the same model bits for T = 1, 2, 3 (Malcom-PSGD, CHOCO-SGD, with resyncs)",
          "[optimizer][threads][determinism]") {
  SECTION("Malcom-PSGD, synchronous") {
    using Opt = MalcomPSGD<>;
    check_same_bits_for_every_thread_count<Opt>(Opt::Compressor({}, DitheredQuantizer{8, Norm::L2}, {}),
                                                L1Prox{0.01});
  }
  SECTION("Malcom-PSGD, overlapped") {
    using Opt = MalcomPSGD<OverlappedStep>;
    check_same_bits_for_every_thread_count<Opt>(Opt::Compressor({}, DitheredQuantizer{8, Norm::L2}, {}),
                                                L1Prox{0.01});
  }
  SECTION("CHOCO-SGD") {
    using Opt = ChocoSGD<>;
    check_same_bits_for_every_thread_count<Opt>(Opt::Compressor({}, DitheredQuantizer{16, Norm::Linf}, {}));
  }
}

TEST_CASE(
    "Threaded Simulation: the callback runs concurrently for different nodes; serially in node order on one "
    "thread",
    "[optimizer][threads]") {
  const int n = 4, d = 8;
  std::vector<std::vector<float>> models(n, std::vector<float>(d, 0.0f));
  std::vector<std::span<float>> spans(models.begin(), models.end());
  using Opt = ChocoSGD<>;
  SECTION("two threads: node 0's callback sees node 1's start while it is still running") {
    Simulation<Opt> sim(Topology::ring(n), spans, {}, {}, {}, LinkModel{}, 2);
    std::atomic<bool> node1_started{false};
    bool overlapped = false;  // written by node 0's call only
    sim.round([&](int i, std::span<const float>, std::span<float> g) {
      std::fill(g.begin(), g.end(), 0.0f);
      if (i == 1) {
        node1_started.store(true);
        node1_started.notify_all();
      }
      if (i != 0) return;
      // Serially node 1 would only start after this returns; give a second thread 30 s to start it.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (!node1_started.load() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      overlapped = node1_started.load();
    });
    CHECK(overlapped);
  }
  SECTION("one thread: node order, on the caller's thread") {
    Simulation<Opt> sim(Topology::ring(n), spans, {}, {}, {}, LinkModel{}, 1);
    std::vector<int> order;
    std::vector<std::thread::id> callers;
    for (int t = 0; t < 2; ++t)
      sim.round([&](int i, std::span<const float>, std::span<float> g) {
        std::fill(g.begin(), g.end(), 0.0f);
        order.push_back(i);
        callers.push_back(std::this_thread::get_id());
      });
    CHECK(order == std::vector<int>{0, 1, 2, 3, 0, 1, 2, 3});
    for (auto id : callers) CHECK(id == std::this_thread::get_id());
  }
}

TEST_CASE(
    "Threaded Simulation: a node's exception reaches the caller as a NodeError naming the node; no hang",
    "[optimizer][threads][errors]") {
  const int n = 6, d = 16;
  using Opt = ChocoSGD<>;
  for (int threads : {1, 2, 3}) {
    INFO("threads = " << threads);
    std::vector<std::vector<float>> models(n, std::vector<float>(d, 1.0f));
    std::vector<std::span<float>> spans(models.begin(), models.end());
    {
      Simulation<Opt> sim(Topology::ring(n), spans, {}, {}, {}, LinkModel{}, threads);
      auto fail_in_round_1 = [](std::initializer_list<int> failing) {
        return [failing](int i, std::span<const float> x, std::span<float> g) {
          std::copy(x.begin(), x.end(), g.begin());
          for (int f : failing)
            if (i == f && x[0] != 1.0f)
              throw std::runtime_error("data loader of node " + std::to_string(i) + " broke");
        };
      };
      sim.round(fail_in_round_1({3}));  // round 0 passes (x = 1 everywhere)
      try {
        sim.round(fail_in_round_1({5, 3}));  // both fail: the lowest node is reported, as serially
        FAIL("no exception");
      } catch (const NodeError& e) {
        CHECK(e.node() == 3);
        CHECK(e.round() == 1);
        CHECK_THAT(e.what(), Catch::Contains("node 3 failed in round 1 (begin_round)") &&
                                 Catch::Contains("data loader of node 3 broke"));
        CHECK_THROWS_AS(std::rethrow_if_nested(e), std::runtime_error);  // the original, with its type
      }
    }  // destroying the simulation joins its threads (a hang fails the ctest TIMEOUT)
  }
}

TEST_CASE("Threaded Simulation: thread counts are validated and capped at the number of nodes",
          "[optimizer][threads]") {
  std::vector<std::vector<float>> models(3, std::vector<float>(4, 0.0f));
  std::vector<std::span<float>> spans(models.begin(), models.end());
  using Opt = ChocoSGD<>;
  Simulation<Opt> sim(Topology::ring(3), spans, {}, {}, {}, LinkModel{}, 8);
  CHECK(sim.threads() == 3);
  sim.set_threads(2);
  CHECK(sim.threads() == 2);
  CHECK_THROWS_WITH(sim.set_threads(0), Catch::Contains("threads must be >= 1"));
  CHECK_THROWS_AS(Simulation<Opt>(Topology::ring(3), spans, {}, {}, {}, LinkModel{}, -1), ConfigError);
  CHECK(Simulation<Opt>::default_threads() >= 1);
}

TEST_CASE(
    "IndexPool: every index runs exactly once; the lowest failing index is reported; the pool stays usable",
    "[core][threads]") {
  for (int threads : {1, 2, 4}) {
    INFO("threads = " << threads);
    detail::IndexPool pool(threads);
    CHECK(pool.threads() == threads);
    for (std::size_t count : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{1000}}) {
      std::vector<std::atomic<int>> runs(count);
      auto job = [&](std::size_t i) { runs[i].fetch_add(1); };
      CHECK_FALSE(pool.run(count, job).has_value());
      for (auto& r : runs) CHECK(r.load() == 1);
    }
    auto failing = [](std::size_t i) {
      if (i == 17 || i == 40) throw std::out_of_range("index " + std::to_string(i));
    };
    const auto failure = pool.run(100, failing);
    REQUIRE(failure.has_value());
    CHECK(failure->index == 17);
    CHECK_THROWS_WITH(std::rethrow_exception(failure->error), "index 17");
    std::atomic<int> after{0};  // the pool runs the next job completely
    auto count_job = [&](std::size_t) { after.fetch_add(1); };
    CHECK_FALSE(pool.run(50, count_job).has_value());
    CHECK(after.load() == 50);
  }
  CHECK_THROWS_AS(detail::IndexPool(0), ConfigError);
}

namespace {
/// This process's virtual memory size (VmSize) in bytes.
rlim_t virtual_memory_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmSize:") {
      rlim_t kb = 0;
      status >> kb;
      return kb * 1024;
    }
    std::getline(status, key);
  }
  return 0;
}
}  // namespace

TEST_CASE("IndexPool: workers the OS refuses to start are left out, and the pool runs without them (no hang)",
          "[core][threads]") {
  // In a child process whose address space leaves room for about one 8 MiB thread stack, a pool of
  // 8 threads gets fewer; it must run a job over every index and be destroyed. A pool waiting for
  // the missing workers would hang: the parent gives the child 60 s, then kills it and fails.
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::atomic<int> ran{0};
    auto job = [&ran](std::size_t) { ran.fetch_add(1); };
    bool ok = false;
    {
      rlimit limit{};
      limit.rlim_cur = limit.rlim_max = virtual_memory_bytes() + (rlim_t{12} << 20);
      setrlimit(RLIMIT_AS, &limit);
      detail::IndexPool pool(8);
      ok = pool.threads() < 8 && !pool.run(100, job).has_value() && ran.load() == 100;
    }
    _exit(ok ? 0 : 1);
  }
  int status = -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  pid_t done = 0;
  while ((done = waitpid(child, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (done == 0) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    FAIL("the pool hung waiting for workers that never started");
  }
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
