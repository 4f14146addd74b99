// decopt-portfolio — mean–variance portfolio optimisation as a finite-sum compositional problem,
// solved by VRSC, AsyVRSC-Shared (lock-free threads) or AsyVRSC-Distributed (master + workers),
// against the exact optimum from one linear solve.
//
//   decopt-portfolio --solver asyvrsc-shared --threads 2 --json
//   decopt-portfolio --solver vrsc --assets 200 --periods 2000 --csv run.csv --plot run.png
//   mpirun -np 5 decopt-portfolio --solver asyvrsc-distributed --transport mpi --json
//
// --transport (asyvrsc-distributed only): threads (default) runs the master and --threads workers
// as threads of this process; mpi runs one process per rank, rank 0 the master and every other
// rank one worker (decopt::compositional::optimize_mpi), so the worker count is the number of
// ranks − 1 and --threads, if given, must equal it. Every rank builds the same problem from the
// flags; only rank 0 prints (progress, the summary, --csv, --plot, the JSON line).
//
// Progress goes to stderr, one line per epoch. With --json the last line of stdout is one JSON
// object: solver, transport, threads (threads or workers), coordinates_per_step, assets, periods, epochs, converged,
// suboptimality (relative to the exact optimum, (f − f*)/|f*|), objective, optimal_value, seconds,
// updates, dropped_updates, max_staleness.
#include <CLI/CLI.hpp>
#include <decopt/compositional/compositional.hpp>

#include <cstdio>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>
#include <string>

#include "common/flags.hpp"
#include "common/gnuplot.hpp"
#include "common/output.hpp"

#ifdef DECOPT_PORTFOLIO_WITH_MPI
#include <decopt/mpi.hpp>

#include <chrono>
#include <memory>
#endif

namespace {

using namespace decopt::compositional;

enum class Solver { Vrsc, Shared, Distributed };

std::string solver_name(Solver s) {
  switch (s) {
    case Solver::Vrsc: return "vrsc";
    case Solver::Shared: return "asyvrsc-shared";
    case Solver::Distributed: return "asyvrsc-distributed";
  }
  return "?";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream s;
  s << std::setprecision(10) << v;
  return s.str();
}

void write_csv(const std::string& path, const CompositionalResult& r) {
  std::ostringstream out;
  out << "epoch,seconds,suboptimality,objective,gradient_norm\n" << std::setprecision(12);
  for (const auto& h : r.history)
    out << h.epoch << ',' << h.seconds << ',' << h.suboptimality << ',' << h.objective << ',' << h.gradient_norm << '\n';
  decopt::examples::output::write_file_atomically(path, out.str(), "--csv");
}

/// Two panels, log-scale suboptimality against epoch and against wall time, drawn by gnuplot. The
/// --plot path never enters the script (common/gnuplot.hpp).
void write_plot(const std::string& path, const CompositionalResult& r, const std::string& title) {
  namespace gp = decopt::examples::gnuplot;
  std::ostringstream data;
  data << std::setprecision(12);
  for (const auto& h : r.history)  // log scale: clamp exact zeros to the smallest positive double
    data << h.epoch << ' ' << h.seconds << ' ' << std::max(h.suboptimality, std::numeric_limits<double>::min()) << '\n';
  std::ostringstream script;
  script << "set terminal pngcairo size 1200,500\n"
         << "set output " << gp::quoted(gp::kOutput) << "\n"
         << "set multiplot layout 1,2 title " << gp::quoted(title) << "\n"
         << "set logscale y\nset format y '10^{%L}'\nset grid\n"
         << "set ylabel '(f - f*)/|f*|'\n"
         << "set xlabel 'epoch'\nplot 'history.dat' using 1:3 with linespoints notitle\n"
         << "set xlabel 'seconds'\nplot 'history.dat' using 2:3 with linespoints notitle\n"
         << "unset multiplot\n";
  gp::draw({script.str(), {{"history.dat", data.str()}}}, path);
}

/// Bytes the problem and the solver allocate, roughly: the d × n returns (generated, then centred),
/// the d × k loadings, and (d+1) × d matrices — covariance, Hessian and its LDLT, the snapshot
/// Jacobian and its sum, and two per thread (partial sum and workspace).
double estimated_memory_bytes(const PortfolioOptions& p, int threads) {
  const auto d = static_cast<double>(p.assets), n = static_cast<double>(p.periods), k = static_cast<double>(p.factors);
  return sizeof(double) * (2 * d * n + d * k + (5.0 + 2.0 * threads) * (d + 1) * d);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"decopt-portfolio: mean-variance portfolio optimisation with VRSC / AsyVRSC"};
  Solver solver = Solver::Vrsc;
  int threads = 2;
  PortfolioOptions problem_options;
  VrscOptions options;
  options.tolerance = 1e-6;
  Eigen::Index inner_steps = 0;
  int max_staleness = AsyVrscDistributedOptions{}.max_staleness;
  Eigen::Index coordinates_per_step = 0;
  std::string csv_path;
  std::string plot_path;
  bool json = false;
  bool quiet = false;
  std::string transport = "threads";
  double timeout_s = 60.0;

  const std::map<std::string, Solver> solvers{
      {"vrsc", Solver::Vrsc}, {"asyvrsc-shared", Solver::Shared}, {"asyvrsc-distributed", Solver::Distributed}};
  std::string solver_flag = "vrsc";
  using decopt::examples::flags::Interval;
  namespace flags = decopt::examples::flags;
  app.add_option("--solver", solver_flag, "vrsc | asyvrsc-shared | asyvrsc-distributed")
      ->check(CLI::IsMember({"vrsc", "asyvrsc-shared", "asyvrsc-distributed"}));
  auto* threads_flag =
      app.add_option("--threads", threads,
                     "threads (asyvrsc-shared) or workers (asyvrsc-distributed; with --transport mpi: ranks - 1)")
          ->check(flags::integer(1, 4096));
  app.add_option("--transport", transport,
                 "asyvrsc-distributed: threads (one process) or mpi (under mpirun, one worker per rank beyond 0)")
      ->check(CLI::IsMember({"threads", "mpi"}));
  app.add_option("--timeout", timeout_s, "--transport mpi: seconds a rank waits for another before failing")
      ->check(flags::real(Interval::closed(1e-3, 1e6)));
  app.add_option("--assets", problem_options.assets, "d, number of assets")->check(flags::integer(1, 1 << 20));
  app.add_option("--periods", problem_options.periods, "n, number of return periods")->check(flags::integer(2, 1 << 30));
  app.add_option("--factors", problem_options.factors, "common factors of the returns model")
      ->check(flags::integer(0, 1 << 20));
  app.add_option("--dof", problem_options.degrees_of_freedom, "Student-t degrees of freedom (> 2)")
      ->check(flags::real(Interval::above(2, 1e6)));
  app.add_option("--risk-aversion", problem_options.risk_aversion, "lambda > 0")->check(flags::real(Interval::above(0, 1e6)));
  app.add_option("--ridge", problem_options.ridge, "mu >= 0, ridge (mu/2)|x|^2")->check(flags::real(Interval::closed(0, 1e6)));
  std::uint64_t seed = 1;
  app.add_option("--seed", seed, "seed of the returns and of the samples")->check(flags::seed());
  app.add_option("--epochs", options.epochs, "maximum epochs")->check(flags::integer(1, 10'000'000));
  app.add_option("--step", options.step_size, "step size eta")->check(flags::real(Interval::above(0, 1e6)));
  auto* inner_steps_flag = app.add_option("--inner-steps", inner_steps, "inner steps per epoch (default: periods)")
                               ->check(flags::integer(1, 1LL << 40));
  app.add_option("--batch-a", options.batch_a, "|A|, inner-value samples per step")->check(flags::integer(1, 1 << 30));
  app.add_option("--batch-b", options.batch_b, "|B|, inner-Jacobian samples per step")->check(flags::integer(1, 1 << 30));
  app.add_option("--tolerance", options.tolerance, "stop at this relative suboptimality (0: run all epochs)")
      ->check(flags::real(Interval::closed(0, 1e6)));
  auto* coordinates_flag =
      app.add_option("--coordinates-per-step", coordinates_per_step,
                     "asyvrsc-shared: coordinates each inner step writes (0 = all; 1 = the coordinate-update model)")
          ->check(flags::integer(0, 1 << 30));
  app.add_option("--max-staleness", max_staleness, "asyvrsc-distributed: staleness bound tau")
      ->check(flags::integer(0, 1 << 30));
  app.add_option("--csv", csv_path, "write per-epoch epoch,seconds,suboptimality to FILE");
  app.add_option("--plot", plot_path, "draw log suboptimality vs epoch and vs seconds to FILE.png (gnuplot)");
  app.add_flag("--json", json, "last line of stdout: one JSON object with the result");
  app.add_flag("--quiet", quiet, "no progress on stderr");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "decopt-portfolio: error: " << e.what() << " (see --help)\n";
    return 2;
  }

  const bool over_mpi = transport == "mpi";
#ifdef DECOPT_PORTFOLIO_WITH_MPI
  // Under --transport mpi every rank runs this program; only rank 0 reports.
  decopt::MpiOptions mpi_options;  // --timeout bounds every wait, the one at the end of the job too
  mpi_options.timeout = std::chrono::milliseconds(static_cast<long>(timeout_s * 1000.0));
  std::unique_ptr<decopt::MpiSession> mpi;
  if (over_mpi) mpi = std::make_unique<decopt::MpiSession>(argc, argv, mpi_options);
  const bool reporting = !over_mpi || decopt::MpiSession::rank() == 0;
  if (!reporting) {
    quiet = true;
    json = false;
    csv_path.clear();
    plot_path.clear();
  }
#else
  const bool reporting = true;
#endif

  try {
    solver = solvers.at(solver_flag);
    if (over_mpi && solver != Solver::Distributed)
      throw decopt::ConfigError("--transport mpi works with --solver asyvrsc-distributed only");
    if (coordinates_flag->count() > 0 && solver != Solver::Shared)
      throw decopt::ConfigError("--coordinates-per-step works with --solver asyvrsc-shared only");
    problem_options.seed = seed;
    options.seed = seed;
    options.inner_steps = inner_steps_flag->count() > 0 ? inner_steps : problem_options.periods;
    // Refused before the run rather than found after it: the output paths, gnuplot, the memory.
    if (!csv_path.empty()) decopt::examples::output::require_writable(csv_path, "--csv");
    if (!plot_path.empty()) {
      decopt::examples::output::require_writable(plot_path, "--plot");
      (void)decopt::examples::gnuplot::find_program("--plot");
    }
    decopt::examples::flags::require_memory(
        estimated_memory_bytes(problem_options, solver == Solver::Vrsc ? 1 : threads),
        "--assets " + std::to_string(problem_options.assets) + " x --periods " + std::to_string(problem_options.periods) +
            " (the returns, and (assets + 1) x assets matrices per thread)");
    if (!quiet) {
      options.on_epoch = [](const EpochRecord& h) {
        std::cerr << "epoch " << std::setw(4) << h.epoch << "  f = " << std::setprecision(10) << h.objective
                  << "  (f-f*)/|f*| = " << std::setprecision(3) << std::scientific << h.suboptimality
                  << std::defaultfloat << "  |grad| = " << std::setprecision(3) << h.gradient_norm << "  "
                  << std::setprecision(3) << h.seconds << " s\n";
      };
    }
    if (!quiet)
      std::cerr << "generating " << problem_options.assets << " assets x " << problem_options.periods
                << " periods (seed " << seed << ") and solving for the exact optimum\n";
    const PortfolioProblem problem(problem_options);
    Vector x = Vector::Zero(problem.dimension());
    CompositionalResult result;
    int used_threads = 1;
    switch (solver) {
      case Solver::Vrsc:
        result = VRSC(options).optimize(problem, x, problem.optimal_value());
        break;
      case Solver::Shared: {
        AsyVrscSharedOptions o;
        static_cast<VrscOptions&>(o) = options;
        o.threads = used_threads = threads;
        o.coordinates_per_step = coordinates_per_step;
        result = AsyVRSCShared(o).optimize(problem, x, problem.optimal_value());
        break;
      }
      case Solver::Distributed: {
        AsyVrscDistributedOptions o;
        static_cast<VrscOptions&>(o) = options;
        o.workers = used_threads = threads;
        o.max_staleness = max_staleness;
        if (!over_mpi) {
          result = AsyVRSCDistributed(o).optimize(problem, x, problem.optimal_value());
          break;
        }
#ifdef DECOPT_PORTFOLIO_WITH_MPI
        used_threads = decopt::MpiSession::size() - 1;
        if (threads_flag->count() > 0 && threads != used_threads)
          throw decopt::ConfigError("--threads " + std::to_string(threads) + " with --transport mpi on " +
                                    std::to_string(used_threads + 1) + " ranks: the workers are the ranks beyond 0, so " +
                                    "--threads must be " + std::to_string(used_threads) + " (or left out)");
        result = optimize_mpi(AsyVRSCDistributed(o), problem, x, problem.optimal_value(), MPI_COMM_WORLD, mpi_options);
        break;
#else
        (void)threads_flag;
        throw decopt::ConfigError("this decopt-portfolio was built without MPI (install libopenmpi-dev and rebuild)");
#endif
      }
    }
    std::ostringstream line;
    line << "{\"solver\":\"" << solver_name(solver) << "\",\"transport\":\"" << (over_mpi ? "mpi" : "threads")
         << "\",\"threads\":" << used_threads << ",\"coordinates_per_step\":" << coordinates_per_step
         << ",\"assets\":" << problem.dimension() << ",\"periods\":" << problem.outer_count()
         << ",\"epochs\":" << result.epochs << ",\"converged\":" << (result.converged ? "true" : "false")
         << ",\"suboptimality\":" << json_number(result.suboptimality)
         << ",\"objective\":" << json_number(result.objective)
         << ",\"optimal_value\":" << json_number(problem.optimal_value())
         << ",\"seconds\":" << json_number(result.seconds) << ",\"updates\":" << result.updates
         << ",\"dropped_updates\":" << result.dropped_updates << ",\"max_staleness\":" << result.max_staleness
         << ",\"step\":" << json_number(options.step_size) << ",\"inner_steps\":" << options.inner_steps << "}";
    if (!reporting) return 0;
    // The result first, the files after: a failing plot cannot take the summary with it.
    if (json) {
      std::cout << line.str() << std::endl;
    } else {
      std::cout << solver_name(solver) << ": " << result.epochs << " epochs, relative suboptimality "
                << result.suboptimality << (result.converged ? " (converged)" : " (not converged)") << ", "
                << result.seconds << " s" << std::endl;
    }
    if (!csv_path.empty()) write_csv(csv_path, result);
    if (!plot_path.empty())
      write_plot(plot_path, result, solver_name(solver) + ", " + std::to_string(problem.dimension()) + " assets, " +
                                        std::to_string(problem.outer_count()) + " periods");
    return 0;
  } catch (const decopt::ConfigError& e) {
    if (reporting) std::cerr << "decopt-portfolio: error: " << e.what() << '\n';
    return 2;
#ifdef DECOPT_PORTFOLIO_WITH_MPI
  } catch (const decopt::TransportError& e) {
    // A rank stopped answering: the others may be waiting on it, so end the whole job.
    std::cerr << "decopt-portfolio: error: " << e.what() << '\n';
    if (over_mpi) MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
#endif
  } catch (const decopt::Error& e) {
    if (reporting) std::cerr << "decopt-portfolio: error: " << e.what() << '\n';
    return 1;
  } catch (const std::exception& e) {
    if (reporting) std::cerr << "decopt-portfolio: error: " << e.what() << '\n';
    return 1;
  }
}
