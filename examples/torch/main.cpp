// decopt-torch-train — decentralized training of a LibTorch CNN on Fashion-MNIST with Malcom-PSGD,
// CHOCO-SGD or D-PSGD: the module's parameters bound zero-copy to decopt's flat buffers
// (decopt/torch.hpp), the local step taken by decopt (--local sgd|momentum|nesterov|adam|adamw)
// or by torch::optim (--local torch-sgd|torch-adam, then decopt's exchange()). decopt-train's
// flags and JSON summary, plus "local", "average_model_accuracy" and "decopt_seconds".
//
//   decopt-torch-train --compare malcom,dpsgd --nodes 8 --epochs 3 --local adam --json
//
// LibTorch runs --torch-threads intra-op threads per node (default 1): each node is one core's
// work, as in decopt-train, and the bits do not depend on how many cores the machine has.
// LibTorch first: c10 defines a CHECK macro of its own, which nothing here uses.
#include <decopt/torch.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "torch/config.hpp"
#include "torch/experiment.hpp"
#include "torch/report.hpp"
#include "train/config.hpp"
#include "train/experiment.hpp"
#include "train/report.hpp"

#ifdef DECOPT_TRAIN_WITH_MPI
#include <memory>

#include "train/mpi_run.hpp"
#endif

namespace {

/// The run's own settings every MPI rank must share, beside decopt-train's.
std::vector<decopt::MpiSetting> torch_settings(const decopt::torch_example::TorchTrainConfig& c) {
  return {{"--local", c.local}, {"--torch-threads", std::to_string(c.torch_threads)}, {"--layerwise", c.layerwise ? "on" : "off"}};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace decopt::torch_example;
  TorchTrainConfig config;
  CLI::App app{"decopt-torch-train: decentralized training of a LibTorch CNN on Fashion-MNIST with compressed gossip"};
  add_flags(app, config);
  // Bad flags, settings that do not fit together and unwritable outputs: one line, exit 2, before
  // the data is loaded.
  auto refused = [](const std::exception& e) {
    std::fprintf(stderr, "decopt-torch-train: %s\n", e.what());
    return 2;
  };
  try {
    app.parse(argc, argv);
    resolve(config, app);
    (void)decopt::train::make_topology(config.train);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "decopt-torch-train: %s (see --help)\n", e.what());
    return 2;
  } catch (const decopt::ConfigError& e) {
    return refused(e);
  }
  ::torch::set_num_threads(config.torch_threads);
#ifdef DECOPT_TRAIN_WITH_MPI
  std::unique_ptr<decopt::train::MpiRun> mpi;
  if (config.train.transport == "mpi") {
    mpi = std::make_unique<decopt::train::MpiRun>(argc, argv, config.train, torch_settings(config), "decopt-torch-train");
    if (const int code = mpi->check_settings(); code != 0) return code;
  }
#endif
  try {
    decopt::train::check_outputs(config.train);  // after MpiRun: only rank 0 writes them
  } catch (const decopt::ConfigError& e) {
    return refused(e);
  }
  try {
    const decopt::train::TrainingData data = decopt::train::load_data(config.train);
    decopt::train::run_and_report(config, config.train, "CNN",
                                  [&](const std::string& algorithm, const decopt::train::ProgressFn& progress) {
                                    return run_experiment(config, algorithm, data, progress);
                                  });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decopt-torch-train: %s\n", e.what());
#ifdef DECOPT_TRAIN_WITH_MPI
    if (mpi) mpi->end_job_after(e);  // after a TransportError: MPI_Abort, as MPI_Finalize could hang
#endif
    return 1;
  }
  return 0;
}
