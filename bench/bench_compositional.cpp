// bench_compositional — wall time to 1e-6 relative suboptimality on the default portfolio problem
// (100 assets, 1000 periods, default VrscOptions) for VRSC, AsyVRSC-Shared (1, 2 threads) and
// AsyVRSC-Distributed (1, 2, 4 workers). These are time-to-tolerance figures, measured in real
// (wall) time because the work is spread over threads; counters report the epochs the run took,
// the final suboptimality, and for the distributed solver the dropped (too stale) updates.
// BM_Memcpy (memcpy_baseline.hpp) runs beside them as this machine's memory-bandwidth yardstick.
#include "memcpy_baseline.hpp"

#include <benchmark/benchmark.h>
#include <decopt/compositional/compositional.hpp>

namespace {

using namespace decopt::compositional;

const PortfolioProblem& default_problem() {
  static const PortfolioProblem problem{PortfolioOptions{}};
  return problem;
}

template <class Solver>
void run_to_tolerance(benchmark::State& state, const Solver& solver) {
  const auto& problem = default_problem();
  CompositionalResult result;
  for (auto _ : state) {
    Vector x = Vector::Zero(problem.dimension());
    result = solver.optimize(problem, x, problem.optimal_value());
    benchmark::DoNotOptimize(x.data());
    if (!result.converged) state.SkipWithError("did not reach 1e-6");
  }
  state.counters["epochs"] = result.epochs;
  state.counters["suboptimality"] = result.suboptimality;
  state.counters["dropped_updates"] = static_cast<double>(result.dropped_updates);
}

VrscOptions to_tolerance() {
  VrscOptions o;
  o.tolerance = 1e-6;
  o.epochs = 200;
  return o;
}

void BM_VRSC(benchmark::State& state) { run_to_tolerance(state, VRSC(to_tolerance())); }

void BM_AsyVRSCShared(benchmark::State& state) {
  AsyVrscSharedOptions o;
  static_cast<VrscOptions&>(o) = to_tolerance();
  o.threads = static_cast<int>(state.range(0));
  run_to_tolerance(state, AsyVRSCShared(o));
}

void BM_AsyVRSCDistributed(benchmark::State& state) {
  AsyVrscDistributedOptions o;
  static_cast<VrscOptions&>(o) = to_tolerance();
  o.workers = static_cast<int>(state.range(0));
  run_to_tolerance(state, AsyVRSCDistributed(o));
}

}  // namespace

BENCHMARK(BM_VRSC)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AsyVRSCShared)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AsyVRSCDistributed)->Arg(1)->Arg(2)->Arg(4)->UseRealTime()->Unit(benchmark::kMillisecond);
