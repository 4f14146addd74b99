// train/report.hpp — what decopt-train shows a person: a progress bar on stderr (when it is a
// terminal), a summary table, the JSON summary line, the CSV of evaluations and a gnuplot plot,
// and the check of the output paths before the run.
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <type_traits>
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

/// "choco+raw": the algorithm and the coder it ran with, as tables, CSVs and plots name a run.
inline std::string run_label(const RunResult& r) {
  const std::string algorithm = r.algorithm + (r.gradient_tracking && r.algorithm != "gt" ? "+gt" : "");
  return r.coder.empty() ? algorithm : algorithm + "+" + r.coder;
}

/// `v` for JSON: the number, or null when it is NaN or infinite (JSON has neither).
inline std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream o;
  o.precision(10);
  o << v;
  return o.str();
}

/// The --target-accuracy fields of the JSON summary (",\"target_accuracy\":0.85,
/// \"rounds_to_target\":120,\"bytes_to_target\":...,\"simulated_seconds_to_target\":..."): the
/// first evaluation whose mean test accuracy reaches the target; null when none does, and
/// simulated seconds null off the sim transport; seconds_to_target is the run's wall time there,
/// training_seconds_to_target the same without the time spent evaluating. Empty without --target-accuracy.
inline std::string target_json_fields(const TrainConfig& c, const RunResult& r) {
  if (c.target_accuracy <= 0) return {};
  const EvalRow* hit = r.first_reaching(c.target_accuracy);
  std::ostringstream o;
  o << ",\"target_accuracy\":" << json_number(c.target_accuracy)
    << ",\"rounds_to_target\":" << (hit ? std::to_string(hit->round) : "null")
    << ",\"bytes_to_target\":" << (hit ? std::to_string(hit->bytes_sent) : "null")
    << ",\"simulated_seconds_to_target\":" << (hit ? json_number(hit->simulated_seconds) : "null")
    << ",\"seconds_to_target\":" << (hit ? json_number(hit->seconds) : "null");
  // The wall time without the evaluations themselves (recorded on sim and threads; a resumed run's
  // earlier rows have none): what the training took to get there.
  const auto i = hit ? static_cast<std::size_t>(hit - r.rows.data()) : r.rows.size();
  if (hit && i < r.evaluation_seconds.size() && r.evaluation_seconds.size() == r.rows.size())
    o << ",\"training_seconds_to_target\":" << json_number(hit->seconds - r.evaluation_seconds[i]);
  return o.str();
}

/// --step async and --slow-node's fields of the JSON summary: k, each node's gradient steps, the
/// largest neighbour lag, gradient age and queue seen (≤ k, ≤ k, ≤ 2k + 1), and the slow node with
/// its measured slowdown (slow_compute_ratio: its compute plus injected delay per gradient over the
/// others'; null on sim, whose speeds are declared). Empty without either flag.
inline std::string straggler_json_fields(const TrainConfig& c, const RunResult& r) {
  std::ostringstream o;
  if (c.step == "async") {
    o << ",\"max_staleness\":" << c.max_staleness
      << ",\"max_gradient_age_bound\":" << (c.max_gradient_age < 0 ? c.max_staleness : c.max_gradient_age)
      << ",\"gradient_steps\":[";
    for (std::size_t i = 0; i < r.gradient_steps.size(); ++i) o << (i ? "," : "") << r.gradient_steps[i];
    o << "],\"max_neighbor_lag\":" << r.async_bounds.max_neighbor_lag << ",\"max_gradient_age\":"
      << r.async_bounds.max_gradient_age << ",\"max_queued\":" << r.async_bounds.max_queued;
  }
  if (c.slow_node >= 0)
    o << ",\"slow_node\":" << c.slow_node << ",\"slow_factor\":" << json_number(c.slow_factor)
      << ",\"slow_reference_ms\":" << json_number(c.slow_reference_ms)
      << ",\"slow_compute_ratio\":" << (std::isfinite(r.slow_compute_ratio) ? json_number(r.slow_compute_ratio) : "null");
  return o.str();
}

inline std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

/// The JSON summary object of one run (one line). Field names are part of decopt's contract.
/// ,"lost_nodes":[{"node":N,"round":R},…]: the nodes that stopped (--fail-node) and when; a node
/// that came back (--rejoin-round) adds "rejoined_round".
inline std::string lost_nodes_json(const std::vector<LostPeer>& lost) {
  std::string text = ",\"lost_nodes\":[";
  for (std::size_t k = 0; k < lost.size(); ++k) {
    text += (k ? ",{\"node\":" : "{\"node\":") + std::to_string(lost[k].node) + ",\"round\":" + std::to_string(lost[k].round);
    if (lost[k].rejoin_round >= 0) text += ",\"rejoined_round\":" + std::to_string(lost[k].rejoin_round);
    text += "}";
  }
  return text + "]";
}

inline std::string json_summary(const TrainConfig& c, const RunResult& r) {
  const EvalRow& last = r.last();
  std::ostringstream o;
  o.precision(10);
  o << "{\"algorithm\":\"" << r.algorithm << "\",\"nodes\":" << r.nodes << ",\"topology\":\"" << r.topology
    << "\",\"rounds\":" << r.rounds << ",\"epochs\":" << last.epoch << ",\"step\":\"" << c.step << "\",\"transport\":\""
    << c.transport << "\",\"partition\":\"" << c.partition << "\",\"compressor\":\""
    << c.compressor_of(r.algorithm) << "\",\"coder\":\"" << r.coder << "\",\"schedule\":\"" << r.schedule
    << "\",\"messages_sent\":" << r.messages_sent() << ",\"messages_per_node_per_round\":"
    << (r.rounds > 0 && r.nodes > 0 ? static_cast<double>(r.messages_sent()) / (static_cast<double>(r.rounds) * r.nodes) : 0.0);
  // On a schedule malcom runs its plain pipeline (no SupportCoded over per-edge copies): say so.
  if (r.algorithm == "malcom" && r.schedule != "static") o << ",\"support_coding\":" << (r.support_coding ? "true" : "false");
  // Gradient tracking: say so; malcom's then runs its plain pipeline (dithered + vsc), without
  // SupportCoded (a coder of the model's x̂, not of the tracker) and without the l1 prox.
  if (r.gradient_tracking) {
    o << ",\"gradient_tracking\":true";
    if (r.algorithm == "malcom") o << ",\"support_coding\":false,\"prox\":\"none\"";
  }
  if (c.lr_schedule != "constant") o << ",\"lr_schedule\":\"" << c.lr_schedule << "\",\"lr_min\":" << json_number(c.lr_min);
  // SGP: a directed graph, one share of 8 + 4d bytes per out-neighbour, and the push-sum weights
  // w_i it de-biases by (1 on a regular graph, up to rounding).
  if (r.push_sum_message_bytes > 0)
    o << ",\"directed\":true,\"message_bytes\":" << r.push_sum_message_bytes
      << ",\"push_sum_weight_min\":" << json_number(r.push_sum_weight_min)
      << ",\"push_sum_weight_max\":" << json_number(r.push_sum_weight_max);
  o << ",\"test_accuracy\":" << last.test_accuracy
    << ",\"test_loss\":" << last.test_loss;
  if (std::isfinite(r.average_model_accuracy)) o << ",\"average_model_accuracy\":" << r.average_model_accuracy;
  o << ",\"total_bytes_sent\":" << last.bytes_sent
    << ",\"bits_per_param_per_round\":" << r.bits_per_param_per_round() << ",\"sparsity\":" << last.sparsity;
  if (std::isfinite(r.sent_sparsity)) o << ",\"sent_sparsity\":" << r.sent_sparsity;
  if (std::isfinite(r.neighbor_sum_error)) o << ",\"neighbor_sum_error\":" << r.neighbor_sum_error;
  o
    << ",\"consensus_distance\":" << last.consensus_distance << ",\"parameters\":" << r.parameters
    << ",\"seconds\":" << r.seconds << ",\"wait_seconds\":" << r.wait_seconds
    << ",\"simulated_seconds\":" << r.simulated_seconds << ",\"evaluations\":" << r.rows.size()
    << lost_nodes_json(r.lost_nodes) << target_json_fields(c, r) << straggler_json_fields(c, r) << ",\"model_checksum\":\""
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
  const bool target = c.target_accuracy > 0;
  std::fprintf(out, "%-12s %9s %12s %10s %14s %9s %11s %9s", "algorithm", "accuracy", "MB sent", "vs first",
               "bits/param/rd", "sparsity", "consensus", "seconds");
  if (target) std::fprintf(out, "  MB to %.3g", c.target_accuracy);
  std::fputc('\n', out);
  if (c.dp.enabled()) std::fprintf(out, "%s\n", dp_summary(c.dp, runs[0].dp_noise, runs[0].dp_epsilon).c_str());
  const double first = static_cast<double>(runs[0].last().bytes_sent);
  for (const auto& r : runs) {
    const auto& l = r.last();
    std::fprintf(out, "%-12s %9.4f %12.2f %9.1f%% %14.3f %8.1f%% %11.3g %9.1f", run_label(r).c_str(), l.test_accuracy,
                 static_cast<double>(l.bytes_sent) / 1e6, 100.0 * static_cast<double>(l.bytes_sent) / first,
                 r.bits_per_param_per_round(), 100.0 * l.sparsity, l.consensus_distance, r.seconds);
    if (target) {
      const EvalRow* hit = r.first_reaching(c.target_accuracy);
      if (hit) std::fprintf(out, "  %9.2f", static_cast<double>(hit->bytes_sent) / 1e6);
      else std::fprintf(out, "  %9s", "never");
    }
    std::fputc('\n', out);
  }
}

/// The CSV of every evaluation: one row per evaluation and algorithm.
inline std::string csv_text(const std::vector<RunResult>& runs) {
  std::ostringstream f;
  f << "algorithm,round,epoch,bytes_sent,megabytes_sent,test_accuracy,test_loss,train_loss,sparsity,consensus_distance,seconds,"
       "coder,test_samples,simulated_seconds,bits_per_param_per_round\n";
  for (const auto& r : runs)
    for (std::size_t i = 0; i < r.rows.size(); ++i) {
      const auto& row = r.rows[i];
      f << r.algorithm << ',' << row.round << ',' << row.epoch << ',' << row.bytes_sent << ','
        << static_cast<double>(row.bytes_sent) / 1e6 << ',' << row.test_accuracy << ',' << row.test_loss << ','
        << row.train_loss << ',' << row.sparsity << ',' << row.consensus_distance << ',' << row.seconds << ','
        << r.coder << ',' << row.test_samples << ',' << row.simulated_seconds << ',' << r.interval_bits_per_param(i) << '\n';
    }
  return f.str();
}

/// Writes csv_text to `path` (atomically: the old file or the new one, never half of one).
inline void write_csv(const std::string& path, const std::vector<RunResult>& runs) {
  examples::output::write_file_atomically(path, csv_text(runs), "--csv");
}

/// The data file of one run for plot_script: per evaluation, megabytes sent, test accuracy, round,
/// bits per parameter per round since the previous evaluation, and sparsity in percent.
inline std::string plot_data(const RunResult& r) {
  std::ostringstream data;
  data.precision(10);
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    const auto& row = r.rows[i];
    data << static_cast<double>(row.bytes_sent) / 1e6 << ' ' << row.test_accuracy << ' ' << row.round << ' '
         << r.interval_bits_per_param(i) << ' ' << 100.0 * row.sparsity << '\n';
  }
  return data.str();
}

/// The gnuplot script of write_plot: four panels (2 × 2), one curve per run in each — test
/// accuracy against megabytes sent (log x, so compressed and uncompressed runs share a plot) and
/// against rounds, bits per parameter per round (log y) and model sparsity against rounds — read
/// from run0.dat, run1.dat, ... (plot_data). `model` names the model in the title.
inline std::string plot_script(const std::vector<RunResult>& runs, const std::string& model = "MLP") {
  namespace gp = examples::gnuplot;
  std::ostringstream script;
  script << "set terminal pngcairo size 1400,1000 font ',11'\nset output " << gp::quoted(gp::kOutput) << '\n'
         << "set multiplot layout 2,2 title "
         << gp::quoted("Fashion-MNIST " + model + ", " + std::to_string(runs[0].nodes) + " nodes, " + runs[0].topology) << '\n'
         << "set grid\nset key bottom right opaque\n";
  auto curves = [&](const std::string& columns) {
    script << "plot ";
    for (std::size_t i = 0; i < runs.size(); ++i)
      script << (i ? ", " : "") << gp::quoted("run" + std::to_string(i) + ".dat") << " using " << columns
             << " with linespoints lw 2 pt 7 ps 0.6 title " << gp::quoted(run_label(runs[i]));
    script << '\n';
  };
  script << "set title 'test accuracy against bytes sent'\nset logscale x\n"
         << "set xlabel 'megabytes sent (all nodes, log scale)'\nset ylabel 'test accuracy (mean over nodes)'\n";
  curves("1:2");
  script << "unset logscale x\nset title 'test accuracy against rounds'\nset xlabel 'round'\n";
  curves("3:2");
  // 5% of margin above and below, so a constant curve (a fixed-width coder) is not drawn on the frame.
  // Log y only when there is something to draw on it (a 1-node run sends nothing; gnuplot refuses
  // a log-scale plot whose points are all 0).
  bool any_bits = false;
  for (const auto& r : runs)
    for (std::size_t i = 0; i < r.rows.size(); ++i) any_bits |= r.interval_bits_per_param(i) > 0;
  script << "set title 'message size (since the previous point)'\n" << (any_bits ? "set logscale y\n" : "")
         << "set key top right\n"
         << "set offsets 0, 0, graph 0.05, graph 0.05\nset ylabel " << gp::quoted(any_bits ? "bits per parameter per round (log scale)" : "bits per parameter per round") << '\n';
  curves("3:4");
  script << "unset logscale y\nset title 'model sparsity'\nset key top left\n"
         << "set ylabel 'parameters exactly zero (%, mean over nodes)'\n";
  curves("3:5");
  script << "unset multiplot\n";
  return script.str();
}

/// Draws plot_script to `png` with gnuplot. The --plot path never enters the script
/// (common/gnuplot.hpp), so no path can inject gnuplot commands.
inline void write_plot(const std::string& png, const std::vector<RunResult>& runs, const std::string& model = "MLP") {
  namespace gp = examples::gnuplot;
  gp::Plot plot;
  for (std::size_t i = 0; i < runs.size(); ++i) plot.data.emplace_back("run" + std::to_string(i) + ".dat", plot_data(runs[i]));
  plot.script = plot_script(runs, model);
  gp::draw(plot, png);
}

/// The RunResult of a run: decopt-train's own. A program with a richer result overloads
/// train_result in its result's namespace (run_and_report finds it there).
inline const RunResult& train_result(const RunResult& r) { return r; }

/// What a training program does once its data is loaded: runs every algorithm of --algorithm or
/// --compare, each with a progress bar (`run(algorithm, progress)` returns its result), then
/// reports them — the table (on stderr under --json, none with --quiet), one JSON summary line
/// per run, then the CSV and the plot of `model`. The results come first: a failing plot cannot
/// take the summary with it. print_table(out, c, runs) and json_summary(c, result) are found in
/// Config's namespace and train_result(result) in the result's (argument-dependent lookup), so
/// decopt-train and decopt-torch-train share this one sequence over their two result types.
template <class Config, class Run>
void run_and_report(const Config& c, const TrainConfig& settings, const std::string& model, Run&& run) {
  using Result = std::decay_t<std::invoke_result_t<Run&, const std::string&, const ProgressFn&>>;
  std::vector<Result> runs;
  for (const auto& algorithm : settings.algorithms()) {
    ProgressBar bar(algorithm, !settings.quiet);
    runs.push_back(run(algorithm, ProgressFn([&](long done, long total, const EvalRow* row) { bar.update(done, total, row); })));
  }
  if (!settings.quiet) print_table(settings.json ? stderr : stdout, c, runs);
  if (settings.json)
    for (const auto& r : runs) std::printf("%s\n", json_summary(c, r).c_str());
  std::fflush(stdout);
  std::vector<RunResult> results;
  for (const auto& r : runs) results.push_back(train_result(r));
  if (!settings.csv.empty()) write_csv(settings.csv, results);
  if (!settings.plot.empty()) write_plot(settings.plot, results, model);
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
