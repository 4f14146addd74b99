// decopt-dp-deviation — how far each per-sample clipping rule moves the update from the true batch
// mean, on real per-sample gradients of decopt-train's MLP on Fashion-MNIST, without noise.
//
// DP-PSAC (Xia et al., AAAI 2023, arXiv 2212.00328) claims that its non-monotonic weight deviates
// less from the true batch-averaged gradient than the normalising rules NSGD and Auto-S. This
// program measures that on every rule at once, on the same batches of the same model:
//
//   1. train the MLP with plain SGD on the true batch mean (no rule is favoured by the path);
//   2. at --points evenly spaced steps (step 0 included), draw --batches fresh batches, compute
//      their per-sample gradients once, and give the same gradients to every rule:
//      Abadi at each C of --abadi-clip, and NSGD, Auto-S and PSAC at --clip (r = --r);
//   3. write one CSV row per point and rule (the means over the batches of
//      decopt::privacy::clipping_deviation) and, last on stdout, a JSON line per rule with the
//      means over all points.
//
// Why a program of its own and not a decopt-train flag: the comparison must be paired — every
// rule on identical gradients — whereas a decopt-train run follows one rule's own trajectory, and
// differences between runs would mix the rules' deviations with where each run's model went.
//
//   decopt-dp-deviation --train-samples 12000 --steps 750 --points 20 --batches 10 --csv dev.csv
#include <CLI/CLI.hpp>
#include <decopt/decopt.hpp>

#include <cstdio>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "common/flags.hpp"
#include "common/output.hpp"
#include "fashion/batches.hpp"
#include "fashion/mlp.hpp"
#include "train/config.hpp"
#include "train/experiment.hpp"
#include "train/privacy.hpp"

namespace {

using decopt::train::PrivateGradient;
namespace privacy = decopt::privacy;

struct Settings {
  std::string data_dir = decopt::examples::kDefaultFashionMnistDir;
  long train_samples = 12000;
  int hidden = decopt::examples::kDefaultHidden;
  int batch = decopt::examples::kDefaultBatchSize;
  double lr = decopt::examples::kDefaultLearningRate;
  long steps = 750;
  long points = 20;
  long batches = 10;
  std::vector<double> abadi_clip{0.03, 0.1, 0.3, 1, 3, 10};
  double clip = 1;  ///< C of nsgd, autos and psac
  double r = 0.1;
  std::uint64_t seed = 1;
  std::string csv;
};

/// One rule as the comparison names it: the rule and its label ("abadi" with its C, or the name).
struct NamedRule {
  std::string rule;
  double clip;
  PrivateGradient::Rule value;
};

std::vector<NamedRule> rules_of(const Settings& s) {
  std::vector<NamedRule> rules;
  decopt::train::DpSettings dp;
  dp.r = s.r;
  for (double c : s.abadi_clip) {
    dp.clip = c;
    dp.clipping = "abadi";
    rules.push_back({"abadi", c, PrivateGradient::make_rule(dp)});
  }
  dp.clip = s.clip;
  for (const char* name : {"nsgd", "autos", "psac"}) {
    dp.clipping = name;
    rules.push_back({name, s.clip, PrivateGradient::make_rule(dp)});
  }
  return rules;
}

/// Means over the batches of one point for one rule.
struct Accumulated {
  double absolute = 0, direction = 0, update_norm = 0, mean_norm = 0, fraction_clipped = 0;
  long count = 0;

  void add(const privacy::ClippingDeviation& d, double clipped) {
    absolute += d.absolute;
    direction += d.direction;
    update_norm += d.update_norm;
    mean_norm += d.mean_norm;
    fraction_clipped += clipped;
    ++count;
  }
  [[nodiscard]] double mean(double total) const { return count > 0 ? total / static_cast<double>(count) : 0.0; }
};

/// The fraction of the batch whose term the rule shortens (ClippingStats::fraction_clipped).
double fraction_clipped(const Eigen::Ref<const Eigen::MatrixXf>& g, const PrivateGradient::Rule& rule, std::span<float> scratch) {
  decopt::Rng unused(0);
  return std::visit([&](const auto& r) { return privacy::private_gradient_with_stats(g, r, 0.0, unused, scratch).fraction_clipped; },
                    rule);
}

int run(const Settings& s) {
  decopt::train::TrainConfig config;  // reuse decopt-train's loading and standardisation
  config.data_dir = s.data_dir;
  config.train_samples = s.train_samples;
  const decopt::train::TrainingData data = decopt::train::load_data(config);

  const decopt::examples::Mlp mlp(data.train.features(), s.hidden, 10);
  const auto p = static_cast<Eigen::Index>(mlp.parameter_count());
  std::vector<float> params(static_cast<std::size_t>(p)), grad(params.size()), mean(params.size()), update(params.size());
  decopt::Rng init = decopt::Rng::derive(s.seed, {0x696e6974ULL /* "init", as decopt-train */});
  mlp.initialize(params, init);

  std::vector<int> all(static_cast<std::size_t>(data.train.size()));
  for (int i = 0; i < data.train.size(); ++i) all[static_cast<std::size_t>(i)] = i;
  decopt::examples::BatchSampler path(all, s.batch, decopt::Rng::derive(s.seed, {2}).next());
  decopt::examples::BatchSampler probe(all, s.batch, decopt::Rng::derive(s.seed, {3}).next());
  Eigen::MatrixXf x(data.train.features(), s.batch), per_sample(p, s.batch);
  std::vector<std::uint8_t> y(static_cast<std::size_t>(s.batch));

  const std::vector<NamedRule> rules = rules_of(s);
  std::vector<Accumulated> overall(rules.size());
  std::ostringstream csv;
  csv << "point,step,rule,clip,absolute,direction,update_norm,mean_norm,fraction_clipped\n";
  csv.precision(8);

  long step = 0;
  for (long point = 0; point < s.points; ++point) {
    const long target = s.points > 1 ? point * s.steps / (s.points - 1) : 0;
    for (; step < target; ++step) {
      path.next(data.train, x, y);
      mlp.loss_and_gradient(params, x, y, grad);
      for (std::size_t k = 0; k < params.size(); ++k) params[k] -= static_cast<float>(s.lr) * grad[k];
    }
    std::vector<Accumulated> here(rules.size());
    for (long b = 0; b < s.batches; ++b) {
      probe.next(data.train, x, y);
      mlp.per_sample_gradients(params, x, y, per_sample);
      privacy::batch_mean(per_sample, mean);
      for (std::size_t i = 0; i < rules.size(); ++i) {
        const auto deviation = std::visit(
            [&](const auto& rule) { return privacy::clipping_deviation(per_sample, rule, mean, update); }, rules[i].value);
        const double clipped = fraction_clipped(per_sample, rules[i].value, update);
        here[i].add(deviation, clipped);
        overall[i].add(deviation, clipped);
      }
    }
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const Accumulated& a = here[i];
      csv << point << ',' << step << ',' << rules[i].rule << ',' << rules[i].clip << ',' << a.mean(a.absolute) << ','
          << a.mean(a.direction) << ',' << a.mean(a.update_norm) << ',' << a.mean(a.mean_norm) << ','
          << a.mean(a.fraction_clipped) << '\n';
    }
  }
  if (!s.csv.empty()) decopt::examples::output::write_file_atomically(s.csv, csv.str(), "--csv");
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const Accumulated& a = overall[i];
    std::printf("{\"rule\":\"%s\",\"clip\":%.10g,\"r\":%.10g,\"batches\":%ld,\"absolute\":%.10g,\"direction\":%.10g,"
                "\"update_norm\":%.10g,\"mean_norm\":%.10g,\"fraction_clipped\":%.10g}\n",
                rules[i].rule.c_str(), rules[i].clip, s.r, a.count, a.mean(a.absolute), a.mean(a.direction),
                a.mean(a.update_norm), a.mean(a.mean_norm), a.mean(a.fraction_clipped));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  namespace flags = decopt::examples::flags;
  using flags::Interval;
  Settings s;
  CLI::App app{"decopt-dp-deviation: deviation of each clipping rule's noise-free update from the true batch mean"};
  app.add_option("--data", s.data_dir, "folder with the Fashion-MNIST .gz files");
  app.add_option("--train-samples", s.train_samples, "use only the first N training samples (0 = all)")
      ->check(flags::integer(0, 1000000000));
  app.add_option("--hidden", s.hidden, "hidden units of the MLP")->check(flags::integer(1, 1 << 16));
  app.add_option("--batch", s.batch, "mini-batch size")->check(flags::integer(1, 4096));
  app.add_option("--lr", s.lr, "learning rate of the SGD trajectory")->check(flags::real(Interval::above(0, 1e6)));
  app.add_option("--steps", s.steps, "SGD steps of the trajectory")->check(flags::integer(0, 100000000));
  app.add_option("--points", s.points, "measurement points along the trajectory (step 0 and the last included)")
      ->check(flags::integer(1, 100000));
  app.add_option("--batches", s.batches, "batches measured at each point")->check(flags::integer(1, 100000));
  app.add_option("--abadi-clip", s.abadi_clip, "clip bounds C of the Abadi rule")
      ->check(flags::real(Interval::above(0, 1e6)))
      ->delimiter(',');
  app.add_option("--clip", s.clip, "clip bound C of nsgd, autos and psac")->check(flags::real(Interval::above(0, 1e6)));
  app.add_option("--r", s.r, "r of nsgd and psac")->check(flags::real(Interval::above(0, 1e6)));
  app.add_option("--seed", s.seed, "seed of the initial model and the batches")->check(flags::seed());
  app.add_option("--csv", s.csv, "write one row per point and rule to this CSV file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "decopt-dp-deviation: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    if (!s.csv.empty()) decopt::examples::output::require_writable(s.csv, "--csv");
    return run(s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decopt-dp-deviation: %s\n", e.what());
    return 1;
  }
}
