// torch/report.hpp — what decopt-torch-train prints: decopt-train's JSON summary (train/report.hpp)
// with this program's fields added, and a table with the local update, the average model's
// accuracy and decopt's share of the time. The CSV, the plot and the order of it all are
// decopt-train's (train::run_and_report).
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

/// The runs as a table: one row per algorithm (with its coder), and with --target-accuracy the
/// megabytes sent until the mean test accuracy first reached it.
inline void print_table(std::FILE* out, const TorchTrainConfig& c, const std::vector<TorchRunResult>& runs) {
  if (runs.empty()) return;
  const train::RunResult& first = runs[0].run;
  std::fprintf(out, "\ndecopt-torch-train: CNN (%zu parameters), %d nodes, %s, %s partition, %ld rounds (%.2f epochs), %s step, %s transport\n",
               first.parameters, first.nodes, first.topology.c_str(), c.train.partition.c_str(), first.rounds,
               first.last().epoch, c.train.step.c_str(), c.train.transport.c_str());
  const bool target = c.train.target_accuracy > 0;
  std::fprintf(out, "%-12s %-10s %9s %9s %12s %14s %10s %9s", "algorithm", "local", "accuracy", "avg model",
               "MB per node", "bits/param/rd", "decopt s", "seconds");
  if (target) std::fprintf(out, "  MB to %.3g", c.train.target_accuracy);
  std::fputc('\n', out);
  for (const auto& r : runs) {
    const auto& l = r.run.last();
    std::fprintf(out, "%-12s %-10s %9.4f %9.4f %12.3f %14.3f %10.2f %9.1f", train::run_label(r.run).c_str(),
                 r.local.c_str(), l.test_accuracy, r.average_model_accuracy,
                 static_cast<double>(l.bytes_sent) / 1e6 / r.run.nodes, r.run.bits_per_param_per_round(),
                 r.decopt_seconds, r.run.seconds);
    if (target) {
      const train::EvalRow* hit = r.run.first_reaching(c.train.target_accuracy);
      if (hit) std::fprintf(out, "  %9.2f", static_cast<double>(hit->bytes_sent) / 1e6);
      else std::fprintf(out, "  %9s", "never");
    }
    std::fputc('\n', out);
  }
}

}  // namespace decopt::torch_example
