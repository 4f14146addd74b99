// train/report.hpp — what decopt-train shows a person: a progress bar on stderr (when it is a
// terminal), a summary table, the JSON summary line, the CSV of evaluations and a gnuplot plot,
// and the check of the output paths before the run.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "common/gnuplot.hpp"
#include "common/output.hpp"
#include "train/config.hpp"
#include "train/experiment.hpp"

namespace decopt::train {

/// A one-line progress bar on stderr, redrawn in place; silent when stderr is not a terminal.
class ProgressBar {
 public:
  ProgressBar(std::string label, bool enabled) : label_(std::move(label)), enabled_(enabled && isatty(2)) {}
  void update(long done, long total, const EvalRow* row) {
    if (row) last_ = *row;
    if (!enabled_) return;
    const int width = 30;
    const int filled = static_cast<int>(static_cast<double>(width) * static_cast<double>(done) / static_cast<double>(total));
    std::fprintf(stderr, "\r%-7s [%s%s] %ld/%ld rounds", label_.c_str(), std::string(static_cast<std::size_t>(filled), '=').c_str(),
                 std::string(static_cast<std::size_t>(width - filled), ' ').c_str(), done, total);
    if (last_.round > 0)
      std::fprintf(stderr, "  acc %.3f  %.1f MB  %.0f s", last_.test_accuracy, static_cast<double>(last_.bytes_sent) / 1e6, last_.seconds);
    if (done == total) std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  std::string label_;
  bool enabled_;
  EvalRow last_;
};

inline std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

/// The JSON summary object of one run (one line). Field names are part of decopt's contract.
inline std::string json_summary(const TrainConfig& c, const RunResult& r) {
  const EvalRow& last = r.last();
  std::ostringstream o;
  o.precision(10);
  o << "{\"algorithm\":\"" << r.algorithm << "\",\"nodes\":" << r.nodes << ",\"topology\":\"" << r.topology
    << "\",\"rounds\":" << r.rounds << ",\"epochs\":" << last.epoch << ",\"step\":\"" << c.step << "\",\"transport\":\""
    << c.transport << "\",\"partition\":\"" << c.partition << "\",\"test_accuracy\":" << last.test_accuracy
    << ",\"test_loss\":" << last.test_loss << ",\"total_bytes_sent\":" << last.bytes_sent
    << ",\"bits_per_param_per_round\":" << r.bits_per_param_per_round() << ",\"sparsity\":" << last.sparsity
    << ",\"consensus_distance\":" << last.consensus_distance << ",\"parameters\":" << r.parameters
    << ",\"seconds\":" << r.seconds << ",\"wait_seconds\":" << r.wait_seconds
    << ",\"simulated_seconds\":" << r.simulated_seconds << ",\"model_checksum\":\""
    << hex64(r.model_checksum) << "\"";
  o << dp_json_fields(c.dp, r.dp_noise, r.dp_epsilon);
  o << "}";
  return o.str();
}

/// The human-readable comparison table.
inline void print_table(std::FILE* out, const TrainConfig& c, const std::vector<RunResult>& runs) {
  if (runs.empty()) return;
  std::fprintf(out, "\ndecopt-train: %d nodes, %s, %s partition, %ld rounds (%.2f epochs), %s step, %s transport\n",
               runs[0].nodes, runs[0].topology.c_str(), c.partition.c_str(), runs[0].rounds, runs[0].last().epoch,
               c.step.c_str(), c.transport.c_str());
  std::fprintf(out, "%-8s %9s %12s %10s %14s %9s %11s %9s\n", "algorithm", "accuracy", "MB sent", "vs first",
               "bits/param/rd", "sparsity", "consensus", "seconds");
  if (c.dp.enabled()) std::fprintf(out, "%s\n", dp_summary(c.dp, runs[0].dp_noise, runs[0].dp_epsilon).c_str());
  const double first = static_cast<double>(runs[0].last().bytes_sent);
  for (const auto& r : runs) {
    const auto& l = r.last();
    std::fprintf(out, "%-8s %9.4f %12.2f %9.1f%% %14.3f %8.1f%% %11.3g %9.1f\n", r.algorithm.c_str(), l.test_accuracy,
                 static_cast<double>(l.bytes_sent) / 1e6, 100.0 * static_cast<double>(l.bytes_sent) / first,
                 r.bits_per_param_per_round(), 100.0 * l.sparsity, l.consensus_distance, r.seconds);
  }
}

/// The CSV of every evaluation: one row per evaluation and algorithm.
inline std::string csv_text(const std::vector<RunResult>& runs) {
  std::ostringstream f;
  f << "algorithm,round,epoch,bytes_sent,megabytes_sent,test_accuracy,test_loss,train_loss,sparsity,consensus_distance,seconds\n";
  for (const auto& r : runs)
    for (const auto& row : r.rows)
      f << r.algorithm << ',' << row.round << ',' << row.epoch << ',' << row.bytes_sent << ','
        << static_cast<double>(row.bytes_sent) / 1e6 << ',' << row.test_accuracy << ',' << row.test_loss << ','
        << row.train_loss << ',' << row.sparsity << ',' << row.consensus_distance << ',' << row.seconds << '\n';
  return f.str();
}

/// Writes csv_text to `path` (atomically: the old file or the new one, never half of one).
inline void write_csv(const std::string& path, const std::vector<RunResult>& runs) {
  examples::output::write_file_atomically(path, csv_text(runs), "--csv");
}

/// Test accuracy against megabytes sent, one curve per algorithm (gnuplot, PNG). Log-scale x so
/// compressed and uncompressed runs share one plot. The --plot path never enters the script
/// (common/gnuplot.hpp), so no path can inject gnuplot commands.
inline void write_plot(const std::string& png, const std::vector<RunResult>& runs) {
  namespace gp = examples::gnuplot;
  gp::Plot plot;
  std::ostringstream script;
  script << "set terminal pngcairo size 1000,620 font ',11'\nset output " << gp::quoted(gp::kOutput) << '\n'
         << "set title " << gp::quoted("Fashion-MNIST, " + std::to_string(runs[0].nodes) + " nodes, " + runs[0].topology) << '\n'
         << "set xlabel 'megabytes sent (all nodes, log scale)'\nset ylabel 'test accuracy (mean over nodes)'\n"
         << "set logscale x\nset grid\nset key bottom right\nplot ";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const std::string file = "run" + std::to_string(i) + ".dat";
    std::ostringstream data;
    for (const auto& row : runs[i].rows) data << static_cast<double>(row.bytes_sent) / 1e6 << ' ' << row.test_accuracy << '\n';
    plot.data.emplace_back(file, data.str());
    script << (i ? ", " : "") << gp::quoted(file) << " using 1:2 with linespoints lw 2 title " << gp::quoted(runs[i].algorithm);
  }
  script << '\n';
  plot.script = script.str();
  gp::draw(plot, png);
}

/// Refuses, before any training, output paths the end of the run could not write: --csv, --plot
/// and --checkpoint must name files in existing, writable folders, and --plot needs gnuplot. A
/// finished run is never lost to a path found bad only when its results are written.
inline void check_outputs(const TrainConfig& c) {
  if (!c.csv.empty()) examples::output::require_writable(c.csv, "--csv");
  if (!c.plot.empty()) {
    examples::output::require_writable(c.plot, "--plot");
    (void)examples::gnuplot::find_program("--plot");
  }
  if (!c.checkpoint.empty()) examples::output::require_writable(c.checkpoint, "--checkpoint");
}

}  // namespace decopt::train
