// decopt-train — decentralized training of an MLP on Fashion-MNIST with Malcom-PSGD, CHOCO-SGD or
// D-PSGD, counting every byte sent. Flags and the --json summary are described in the README.
//
//   decopt-train --compare malcom,choco,dpsgd --nodes 8 --topology ring --epochs 2 --plot out.png
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>

#include "train/config.hpp"
#include "train/experiment.hpp"
#include "train/push_sum_flags.hpp"
#include "train/report.hpp"

#ifdef DECOPT_TRAIN_WITH_MPI
#include <memory>

#include "train/mpi_run.hpp"
#endif

int main(int argc, char** argv) {
  using namespace decopt::train;
  TrainConfig config;
  CLI::App app{"decopt-train: decentralized training of an MLP on Fashion-MNIST with compressed gossip"};
  add_flags(app, config);
  try {
    app.parse(argc, argv);
    config.support_patience_given = app.count("--support-patience") > 0;
    check_coder(config);  // a flag combination that means nothing is a usage error too
    check_push_sum_flags(app, config);
    check_rejoin(config);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "decopt-train: %s (see --help)\n", e.what());
    return 2;
  }
#ifdef DECOPT_TRAIN_WITH_MPI
  // Under --transport mpi every rank runs this program, with the same settings; only rank 0 reports.
  std::unique_ptr<MpiRun> mpi;
  if (config.transport == "mpi") {
    mpi = std::make_unique<MpiRun>(argc, argv, config);
    if (const int code = mpi->check_settings(); code != 0) return code;
  }
#endif
  try {
    // Everything that can be refused is refused before the data is loaded and the run starts.
    check_run(config);
    check_outputs(config);
    const TrainingData data = load_data(config);
    run_and_report(config, config, "MLP", [&](const std::string& algorithm, const ProgressFn& progress) {
      return run_experiment(config, algorithm, data, progress);
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decopt-train: %s\n", e.what());
#ifdef DECOPT_TRAIN_WITH_MPI
    if (mpi) mpi->end_job_after(e);  // after a TransportError: MPI_Abort, as MPI_Finalize could hang
#endif
    return 1;
  }
  return 0;
}
