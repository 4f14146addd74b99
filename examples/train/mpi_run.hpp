// train/mpi_run.hpp — decopt-train under --transport mpi (one node per rank): MPI from start to
// end, bounded by --timeout; rank 0 alone reporting; every rank checked at start-up to run with the
// same settings; and how the job ends after a failure.
//
// Ranks given different flags would otherwise hang (a different --rounds or --eval-every is a
// different number of collective calls) or silently train different models (--seed, --levels,
// --lr, ...), so before anything else every rank compares run_settings (decopt::
// require_same_settings) and, if they differ, rank 0 prints one line naming the first setting that
// differs and the ranks involved, and every rank exits with code 2.
#pragma once

#include <decopt/mpi.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "train/config.hpp"

namespace decopt::train {

/// The MpiOptions of a run: --timeout bounds every wait for another rank (at most 10^9 s, so that
/// the milliseconds fit).
inline MpiOptions mpi_options(const TrainConfig& c) {
  MpiOptions options;
  options.timeout = std::chrono::milliseconds(static_cast<long long>(std::min(c.timeout_s, 1e9) * 1000));
  return options;
}

/// Every setting that decides what a run computes, or which collective calls its ranks make, as
/// (flag, value) in the order of --help: what every rank of an MPI run must agree on. Left out:
/// what only rank 0 uses (--json, --quiet, --csv, --plot), --timeout, the link model (simulated
/// transports only), --data (a path on each machine), --checkpoint/--resume (refused under MPI).
inline std::vector<MpiSetting> run_settings(const TrainConfig& c) {
  auto number = [](double v) {
    std::ostringstream o;
    o.precision(17);  // round-trips a double: two settings print alike only if they are equal
    o << v;
    return o.str();
  };
  std::string compare;
  for (const auto& a : c.compare) compare += (compare.empty() ? "" : ",") + a;
  return {{"--algorithm", c.algorithm},
          {"--compare", compare},
          {"--gradient-tracking", c.gradient_tracking ? "on" : "off"},
          {"--step", c.step},
          {"--local-steps", std::to_string(c.local_steps)},
          {"--nodes", std::to_string(c.nodes)},
          {"--topology", c.topology},
          {"--schedule", c.schedule},
          {"--schedule-period", std::to_string(c.schedule_period)},
          {"--erdos-renyi-p", number(c.erdos_renyi_p)},
          {"--epochs", number(c.epochs)},
          {"--rounds", std::to_string(c.rounds)},
          {"--seed", std::to_string(c.seed)},
          {"--partition", c.partition},
          {"--levels", std::to_string(c.levels)},
          {"--norm", c.norm},
          {"--lambda", number(c.lambda)},
          {"--support-patience", std::to_string(c.support_patience)},
          {"--support-levels", c.support_levels},
          {"--lambda-warmup", number(c.lambda_warmup)},
          {"--lambda-ramp", number(c.lambda_ramp)},
          {"--lr", number(c.lr)},
          {"--lr-schedule", c.lr_schedule},
          {"--lr-min", number(c.lr_min)},
          {"--gamma", number(c.gamma)},
          {"--momentum", number(c.momentum)},
          {"--batch", std::to_string(c.batch)},
          {"--hidden", std::to_string(c.hidden)},
          {"--eval-every", std::to_string(c.eval_every)},
          {"--evals", std::to_string(c.evals)},
          {"--eval-samples", std::to_string(c.eval_samples)},
          {"--target-accuracy", number(c.target_accuracy)},  // decides the evaluations' test images
          {"--coder", c.coder.empty() ? "(default)" : c.coder},
          {"--train-samples", std::to_string(c.train_samples)},
          {"--dp-clip", number(c.dp.clip)},
          {"--dp-noise", number(c.dp.noise)},
          {"--dp-epsilon", number(c.dp.target_epsilon)},
          {"--clipping", c.dp.clipping},
          {"--dp-r", number(c.dp.r)},
          {"--dp-delta", number(c.dp.delta)}};
}

/// This process of an MPI run of decopt-train, for main()'s lifetime:
///
///   MpiRun mpi(argc, argv, config);              // MPI_Init; ranks other than 0 made quiet
///   if (const int code = mpi.check_settings(); code != 0) return code;
///   try { ... } catch (const std::exception& e) { print(e); mpi.end_job_after(e); return 1; }
///
/// and at the end MPI_Finalize, or MPI_Abort if the other ranks do not come within --timeout.
class MpiRun {
 public:
  /// @param extra_settings  a program's own settings to compare too, after run_settings(config)
  /// @param program         the name that starts the line about differing settings
  MpiRun(int& argc, char**& argv, TrainConfig& config, const std::vector<MpiSetting>& extra_settings = {},
         std::string program = "decopt-train")
      : session_(argc, argv, mpi_options(config)), settings_(run_settings(config)), program_(std::move(program)) {
    settings_.insert(settings_.end(), extra_settings.begin(), extra_settings.end());
    if (MpiSession::rank() != 0) {  // only rank 0 reports
      config.quiet = true;
      config.csv.clear();
      config.plot.clear();
      config.json = false;
    }
  }

  /// Checks that every rank runs with this rank's settings (collective). Returns 0 if so; 2 when
  /// they differ, after rank 0 printed "decopt-train: ... ranks disagree on <flag>: rank a has X,
  /// rank b has Y". A rank that does not take part within --timeout: this rank prints the
  /// TransportError and the job ends (MPI_Abort).
  [[nodiscard]] int check_settings() const {
    try {
      require_same_settings(settings_, MPI_COMM_WORLD, session_.options());
      return 0;
    } catch (const ConfigError& e) {  // the same on every rank: one line for the job
      if (MpiSession::rank() == 0) std::fprintf(stderr, "%s: %s\n", program_.c_str(), e.what());
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s\n", program_.c_str(), e.what());
      end_job_after(e);
      return 1;
    }
  }

  /// After `error` was printed: ends the whole job at once if it is a TransportError (another rank
  /// is stopped, gone or stuck, so MPI_Finalize could wait forever); returns otherwise.
  void end_job_after(const std::exception& error) const { session_.end_job_after(error); }

 private:
  MpiSession session_;
  std::vector<MpiSetting> settings_;
  std::string program_;
};

}  // namespace decopt::train
