// torch/report.hpp — what decopt-torch-train prints: decopt-train's JSON summary (train/report.hpp)
// with this program's fields added, and a table with the local update, the average model's
// accuracy and decopt's share of the time. The CSV and the plot are decopt-train's.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "torch/config.hpp"
#include "torch/experiment.hpp"
#include "train/report.hpp"

namespace decopt::torch_example {

/// decopt-train's JSON summary of the run plus "local", "average_model_accuracy" and
/// "decopt_seconds" (mean over nodes), before its closing brace.
inline std::string json_summary(const TorchTrainConfig& c, const TorchRunResult& r) {
  std::string json = train::json_summary(c.train, r.run);
  json.pop_back();  // the closing '}'
  json += ",\"local\":\"" + r.local + "\",\"average_model_accuracy\":" + examples::flags::number(r.average_model_accuracy) +
          ",\"decopt_seconds\":" + examples::flags::number(r.decopt_seconds) + "}";
  return json;
}

/// The runs as a table: one row per algorithm.
inline void print_table(std::FILE* out, const TorchTrainConfig& c, const std::vector<TorchRunResult>& runs) {
  if (runs.empty()) return;
  const train::RunResult& first = runs[0].run;
  std::fprintf(out, "\ndecopt-torch-train: CNN (%zu parameters), %d nodes, %s, %s partition, %ld rounds (%.2f epochs), %s step, %s transport\n",
               first.parameters, first.nodes, first.topology.c_str(), c.train.partition.c_str(), first.rounds,
               first.last().epoch, c.train.step.c_str(), c.train.transport.c_str());
  std::fprintf(out, "%-9s %-10s %9s %9s %12s %14s %10s %9s\n", "algorithm", "local", "accuracy", "avg model",
               "MB per node", "bits/param/rd", "decopt s", "seconds");
  for (const auto& r : runs) {
    const auto& l = r.run.last();
    std::fprintf(out, "%-9s %-10s %9.4f %9.4f %12.3f %14.3f %10.2f %9.1f\n", r.run.algorithm.c_str(), r.local.c_str(),
                 l.test_accuracy, r.average_model_accuracy, static_cast<double>(l.bytes_sent) / 1e6 / r.run.nodes,
                 r.run.bits_per_param_per_round(), r.decopt_seconds, r.run.seconds);
  }
}

/// The decopt-train results of the runs (for its CSV and plot).
inline std::vector<train::RunResult> train_results(const std::vector<TorchRunResult>& runs) {
  std::vector<train::RunResult> out;
  for (const auto& r : runs) out.push_back(r.run);
  return out;
}

}  // namespace decopt::torch_example
