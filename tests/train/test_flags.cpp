// decopt-train's command line (examples/common/flags.hpp through train/config.hpp), the length of
// a run and its memory estimate — issue 13, items 6 and 13: `--epochs nan` and `--epochs 1e300`
// segfaulted, `--seed -1` became 2^64 − 1, `--timeout nan` ran, range errors printed 300 digits,
// and a huge --hidden ended in a bare std::bad_alloc.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "common/flags.hpp"
#include "train/config.hpp"
#include "train/experiment.hpp"

using namespace decopt;
using namespace decopt::train;

namespace {

TrainConfig parse(const std::string& args) {
  CLI::App app("test");
  TrainConfig c;
  add_flags(app, c);
  app.parse(args, /*program_name_included=*/false);
  return c;
}

/// The message CLI11 gives for `args`, or "(accepted)".
std::string parse_error(const std::string& args) {
  try {
    (void)parse(args);
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return "(accepted)";
}

const std::string kRealFlags[] = {"--epochs",        "--lr",         "--gamma",          "--lambda",
                                  "--momentum",      "--latency-ms", "--bandwidth-mbps", "--timeout",
                                  "--erdos-renyi-p", "--dp-clip",    "--dp-noise",       "--dp-epsilon",
                                  "--dp-r",          "--dp-delta"};
const std::string kIntegerFlags[] = {
    "--local-steps", "--nodes",      "--rounds",        "--levels",           "--batch",
    "--hidden",      "--eval-every", "--train-samples", "--checkpoint-every", "--seed", "--schedule-period"};

}  // namespace

TEST_CASE(
    "Every real flag of decopt-train refuses NaN, infinities and out-of-range values, naming the flag and "
    "its bounds",
    "[train][flags]") {
  for (const auto& flag : kRealFlags) {
    for (const std::string value : {"nan", "inf", "-inf", "1e300", "1e400", "-1", "x"}) {
      CAPTURE(flag, value);
      const std::string error = parse_error(flag + " " + value);
      CHECK(error.rfind(flag + ": ", 0) == 0);
      CHECK(error.size() < 90);  // bounds as a person writes them, not 300 digits
    }
  }
  CHECK(parse_error("--timeout nan") == "--timeout: nan is not a finite number");
  CHECK(parse_error("--epochs nan") == "--epochs: nan is not a finite number");
  CHECK(parse_error("--epochs 1e300") == "--epochs: 1e300 is not in (0, 1e+06]");
  CHECK(parse_error("--gamma 0") == "--gamma: 0 is not in (0, 1]");
  CHECK(parse_error("--momentum 1") == "--momentum: 1 is not in [0, 1)");
  CHECK(parse_error("--bandwidth-mbps 1e-9") == "--bandwidth-mbps: 1e-9 is not in {0} or [0.001, 1e+12]");
  // A learning rate that is 0 (or a denormal) in float is refused; the smallest normal float is not.
  CHECK(parse_error("--lr 1e-46").rfind("--lr: 1e-46 is not in [1.1754943508222875e-38, ", 0) == 0);
  CHECK(static_cast<float>(parse("--lr 1.2e-38").lr) > 0.0f);

  const TrainConfig c =
      parse("--epochs 0.5 --gamma 1 --momentum 0.9 --bandwidth-mbps 0 --latency-ms 5 --lr 0.05");
  CHECK(c.epochs == 0.5);
  CHECK(c.gamma == 1.0);
  CHECK(c.momentum == 0.9);
  CHECK(c.bandwidth_mbps == 0.0);
  CHECK(c.latency_ms == 5.0);
  CHECK(c.lr == 0.05);
}

TEST_CASE(
    "Every integer flag of decopt-train takes plain decimal integers in range, and the seed all 64 bits of "
    "them",
    "[train][flags]") {
  for (const auto& flag : kIntegerFlags) {
    for (const std::string value :
         {"1.5", "nan", "1e3", "-5", "99999999999999999999", "010", "0x10", "12abc"}) {
      CAPTURE(flag, value);
      const std::string error = parse_error(flag + " " + value);
      CHECK(error.rfind(flag + ": ", 0) == 0);
    }
  }
  CHECK(parse_error("--nodes 0") == "--nodes: 0 is not in [1, 4096]");
  CHECK(parse_error("--nodes 010") ==
        "--nodes: '010' is not a decimal integer (leading zero)");  // CLI11 read it as 8
  CHECK(parse_error("--seed -1") == "--seed: -1 is not in [0, 18446744073709551615]");
  CHECK(parse_error("--seed 18446744073709551616") ==
        "--seed: 18446744073709551616 is not in [0, 18446744073709551615]");
  CHECK(parse_error("--seed 1e23") == "--seed: '1e23' is not a decimal integer");
  CHECK(parse("--seed 18446744073709551615").seed == std::numeric_limits<std::uint64_t>::max());
  CHECK(parse("--seed 0").seed == 0);
  CHECK(parse("--nodes 12 --rounds 1000000000 --eval-every 0").nodes == 12);
  CHECK(parse("--rounds 1000000000").rounds == kMaxRounds);
  CHECK(parse_error("--rounds 1000000001") == "--rounds: 1000000001 is not in [1, 1000000000]");
}

TEST_CASE("The validators on their own: NaN is in no interval, text must be wholly a number",
          "[train][flags]") {
  using examples::flags::Interval;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const Interval& i :
       {Interval::closed(0, 1), Interval::above(0, 1), Interval::below(0, 1), Interval::open(0, 1)}) {
    CHECK_FALSE(i.contains(nan));
    CHECK(i.contains(0.5));
    CHECK(i.contains(0.0) == !i.min_open);
    CHECK(i.contains(1.0) == !i.max_open);
  }
  CHECK_FALSE(Interval::closed(1, 2).or_zero().contains(nan));
  CHECK(Interval::closed(1, 2).or_zero().contains(0.0));
  CHECK_FALSE(Interval::closed(1, 2).contains(0.0));
  CHECK(examples::flags::real_problem("0.25", Interval::closed(0, 1)).empty());
  CHECK(examples::flags::real_problem("0.25 ", Interval::closed(0, 1)) == "'0.25 ' is not a number");
  CHECK(examples::flags::integer_problem<std::int64_t>("-0", -1, 1).empty());
  CHECK(examples::flags::integer_problem<std::int64_t>("9223372036854775808", 0, 10) ==
        "9223372036854775808 is not in [0, 10]");
  CHECK(examples::flags::number(1e6) == "1e+06");
  CHECK(examples::flags::number(0.001) == "0.001");
}

TEST_CASE(
    "The run length: an --epochs of NaN or 1e300 and a --rounds beyond the limit are ConfigErrors, not a "
    "crash",
    "[train][errors]") {
  TrainConfig c;
  c.epochs = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_THROWS_WITH(planned_rounds(c, 15), Catch::Contains("--epochs nan"));
  c.epochs = 1e300;
  REQUIRE_THROWS_WITH(planned_rounds(c, 15),
                      Catch::Contains("--epochs 1e+300") && Catch::Contains("1 to 1000000000 rounds"));
  c.epochs = 2;
  CHECK(planned_rounds(c, 15) == 30);
  c.epochs = 0.01;
  CHECK(planned_rounds(c, 15) == 1);
  c.rounds = -3;
  REQUIRE_THROWS_WITH(planned_rounds(c, 15), Catch::Contains("--rounds -3"));
  c.rounds = kMaxRounds + 1;
  REQUIRE_THROWS_AS(planned_rounds(c, 15), ConfigError);
  c.rounds = 7;
  CHECK(planned_rounds(c, 15) == 7);

  // More evaluations than a checkpoint can hold.
  c.eval_every = 1;
  REQUIRE_THROWS_WITH(evaluation_interval(c, 15, kMaxRounds), Catch::Contains("--eval-every"));
  CHECK(evaluation_interval(c, 15, 7) == 1);
  c.eval_every = 0;  // from --evals: ⌊rounds / evals⌋, at least 1
  CHECK(evaluation_interval(c, 15, 7) == 1);
  c.evals = 2;
  CHECK(evaluation_interval(c, 15, 100) == 50);

  // The whole run: the old code cast NaN × rounds-per-epoch to long (undefined), trained 0 rounds,
  // then read rows.back() of an empty list.
  TrainConfig tiny;
  tiny.nodes = 2;
  tiny.train_samples = 500;
  tiny.hidden = 16;
  const TrainingData data = load_data(tiny);
  for (const double epochs : {std::numeric_limits<double>::quiet_NaN(), 1e300, -1.0, 0.0}) {
    CAPTURE(epochs);
    tiny.epochs = epochs;
    REQUIRE_THROWS_AS(run_experiment(tiny, "malcom", data, {}), ConfigError);
  }
}

TEST_CASE(
    "A run too large for the machine is refused before it allocates, with the figure and the flags that make "
    "it large",
    "[train][errors]") {
  TrainConfig c;
  c.hidden = 10'000'000;  // 7 950 000 010 parameters per model, 8 nodes
  REQUIRE_THROWS_WITH(check_run(c),
                      Catch::Contains("--nodes 8 x --hidden 10000000 (7950000010 parameters per model)") &&
                          Catch::Contains("TB of memory, more than the"));
  CHECK(estimated_memory_bytes(c) >= 8.0 * 7'950'000'010.0 * sizeof(float) * kModelBuffersPerNode);
  c.hidden = 16;
  CHECK_NOTHROW(check_run(c));
  TrainConfig privately = c;
  privately.dp.clip = 1;
  privately.dp.noise = 1;
  const double parameters = 784.0 * 16 + 16 + 10 * 16 + 10;
  CHECK(estimated_memory_bytes(privately) - estimated_memory_bytes(c) ==
        Approx(8 * parameters * 32 * sizeof(float)));

  REQUIRE_THROWS_WITH(examples::flags::require_memory(2.5e12, "--hidden 7", 1e9),
                      Catch::Equals("decopt: configuration error: --hidden 7 needs about 2.5 TB of memory, "
                                    "more than the 1 GB available"));
  CHECK_NOTHROW(examples::flags::require_memory(1e9, "--hidden 7", 2e9));
  CHECK(examples::flags::available_memory_bytes() > 0);
}

TEST_CASE("--coder: each algorithm's own coder by default, any of three for malcom and choco, only raw for dpsgd",
          "[train][flags][coder]") {
  const TrainConfig defaults = parse("");
  CHECK(defaults.coder_of("malcom") == "vsc");
  CHECK(defaults.coder_of("choco") == "raw");  // CHOCO-SGD's fixed-width accounting
  CHECK(defaults.coder_of("dpsgd") == "raw");
  const TrainConfig elias = parse("--algorithm choco --coder elias");
  CHECK(elias.coder_of("choco") == "elias");
  CHECK(elias.coder_of("malcom") == "elias");
  CHECK_NOTHROW(check_coder(elias));
  CHECK_NOTHROW(check_coder(parse("--algorithm dpsgd --coder raw")));
  CHECK_NOTHROW(check_coder(parse("--compare malcom,choco,dpsgd")));
  // The identity compressor sends float32 values: there are no levels for Elias or VSC to code.
  REQUIRE_THROWS_WITH(check_coder(parse("--algorithm dpsgd --coder vsc")),
                      Catch::StartsWith("--coder: vsc does not apply to dpsgd") && Catch::Contains("raw float32"));
  REQUIRE_THROWS_AS(check_coder(parse("--compare choco,dpsgd --coder elias")), CLI::ValidationError);
  CHECK_THAT(parse_error("--coder huffman"), Catch::StartsWith("--coder: huffman not in"));

  // Part of what a checkpoint must match (and of run_settings, which every MPI rank must share:
  // the ctest train_mpi_settings_coder).
  CHECK(run_identity(elias, "choco") != run_identity(parse("--algorithm choco"), "choco"));
  CHECK(run_identity(parse("--coder raw"), "choco") == run_identity(parse(""), "choco"));  // raw is choco's own
}

TEST_CASE("Evaluations: at least --evals (default 20) per run, evenly spaced; --eval-every instead of it",
          "[train][flags][evals]") {
  const TrainConfig c = parse("");
  CHECK(c.evals == 20);
  // Evaluations a run of `total` rounds records: ⌈total / interval⌉.
  const auto evaluations = [](const TrainConfig& config, long total) {
    const long every = evaluation_interval(config, 234, total);
    return total / every + (total % every != 0);
  };
  for (const long total : {20L, 21L, 39L, 470L, 2340L, 1'000'000L}) {
    CAPTURE(total);
    CHECK(evaluations(c, total) >= 20);
    CHECK(evaluations(c, total) < 40);
  }
  CHECK(evaluations(c, 5) == 5);  // fewer rounds than evaluations: one per round
  CHECK(evaluations(parse("--evals 3"), 471) == 3);  // every 157 rounds
  CHECK(evaluations(parse("--evals 3"), 470) == 4);  // every 156, and at the end
  CHECK(evaluation_interval(parse("--eval-every 100"), 234, 470) == 100);
  CHECK_THAT(parse_error("--evals 5 --eval-every 3"), Catch::Contains("excludes"));
  CHECK_THAT(parse_error("--evals 0"), Catch::StartsWith("--evals: 0 is not in [1, "));
  CHECK_THAT(parse_error("--target-accuracy 1.5"), Catch::StartsWith("--target-accuracy: 1.5 is not in (0, 1]"));
  CHECK_THAT(parse_error("--eval-samples -1"), Catch::StartsWith("--eval-samples: -1 is not in [0, "));
  // Intermediate evaluations on the first 2 000 test images, unless a target accuracy is to be
  // found: its crossing is that of the whole test set's accuracy, which the run reports.
  CHECK(c.intermediate_eval_samples() == 2000);
  CHECK(parse("--target-accuracy 0.8").intermediate_eval_samples() == 0);
  CHECK(parse("--target-accuracy 0.8 --eval-samples 500").intermediate_eval_samples() == 500);
  CHECK(parse("--eval-samples 0").intermediate_eval_samples() == 0);
}

TEST_CASE("Rounds per epoch count rounds of --local-steps batches; --step-seconds and --eval-average parse",
          "[train][flags]") {
  // A round draws τ batches: 63 batches per node are ⌈63/τ⌉ rounds (it was 63 for every τ, so
  // --epochs 3 at τ = 8 trained 24 epochs).
  CHECK(rounds_per_epoch(63, 1) == 63);
  CHECK(rounds_per_epoch(63, 2) == 32);
  CHECK(rounds_per_epoch(63, 8) == 8);
  CHECK(rounds_per_epoch(8, 4) == 2);
  CHECK(planned_rounds(parse("--epochs 3 --local-steps 8"), rounds_per_epoch(63, 8)) == 24);
  CHECK(parse("--step-seconds 0.01").step_seconds == 0.01);
  CHECK_THAT(parse_error("--step-seconds -1"), Catch::StartsWith("--step-seconds: -1 is not in [0, "));
  CHECK(parse("--eval-average").eval_average);
  CHECK_FALSE(parse("").eval_average);
  // The average model, summed in double in node order.
  const std::vector<std::vector<float>> models{{1.0f, 2.0f, -4.0f}, {3.0f, 5.0f, 4.0f}};
  CHECK(average_model(models) == std::vector<float>{2.0f, 3.5f, 0.0f});
}

TEST_CASE("The l1 schedule: lambda 0 during --lambda-warmup, a linear ramp over --lambda-ramp, then --lambda; "
          "--support-levels live|fixed",
          "[train][flags]") {
  const TrainConfig none = parse("");
  CHECK(none.lambda_warmup == 0);
  CHECK(none.lambda_ramp == 0);
  CHECK(none.support_levels == "live");
  CHECK(lambda_factor(none, 0, 100) == 1.0);
  const TrainConfig c = parse("--lambda-warmup 2 --lambda-ramp 4");
  CHECK(lambda_factor(c, 0, 100) == 0.0);
  CHECK(lambda_factor(c, 199, 100) == 0.0);
  CHECK(lambda_factor(c, 200, 100) == 0.0);
  CHECK(lambda_factor(c, 300, 100) == Approx(0.25));
  CHECK(lambda_factor(c, 500, 100) == Approx(0.75));
  CHECK(lambda_factor(c, 600, 100) == 1.0);
  CHECK(lambda_factor(c, 10'000, 100) == 1.0);
  const TrainConfig step = parse("--lambda-warmup 1.5");  // no ramp: lambda at once after the warm-up
  CHECK(lambda_factor(step, 149, 100) == 0.0);
  CHECK(lambda_factor(step, 150, 100) == 1.0);
  CHECK_THAT(parse_error("--lambda-ramp -1"), Catch::StartsWith("--lambda-ramp: -1 is not in [0, "));
  CHECK_THAT(parse_error("--lambda-warmup nan"), Catch::Contains("--lambda-warmup"));
  CHECK(parse("--support-levels fixed").support_levels == "fixed");
  CHECK(parse_error("--support-levels some") != "(accepted)");
}

TEST_CASE("--schedule: static is --topology, one-peer-exp and random-matchings on --nodes; what a schedule cannot run "
          "with is refused naming the flag", "[train][flags][schedule]") {
  CHECK(parse("").schedule == "static");
  CHECK_THAT(parse_error("--schedule hourly"), Catch::Contains("--schedule"));
  CHECK(make_schedule(parse("--topology ring --nodes 6")).period() == 1);
  CHECK(make_schedule(parse("--schedule one-peer-exp --nodes 8")).period() == 3);
  CHECK(make_schedule(parse("--schedule random-matchings --nodes 8")).period() == 6);  // 2·log2 8
  CHECK(make_schedule(parse("--schedule random-matchings --nodes 8 --schedule-period 4")).period() == 4);
  CHECK_THROWS_WITH(make_schedule(parse("--schedule one-peer-exp --nodes 6")), Catch::Contains("power-of-two"));
  CHECK_THROWS_WITH(make_schedule(parse("--schedule-period 3")), Catch::Contains("--schedule-period applies to"));
  CHECK_THROWS_WITH(check_run(parse("--schedule one-peer-exp --step overlap")), Catch::Contains("--step sync only"));
  CHECK_THROWS_WITH(check_run(parse("--schedule one-peer-exp --compressor topk")), Catch::Contains("dithered compressor only"));
  CHECK_THROWS_WITH(check_run(parse("--schedule one-peer-exp --coder elias")), Catch::Contains("leave --coder out"));
  TrainConfig patience = parse("--schedule one-peer-exp --support-patience 2");
  patience.support_patience_given = true;  // main() sets it from the command line
  CHECK_THROWS_WITH(check_run(patience), Catch::Contains("--support-patience do not apply"));
  CHECK_NOTHROW(check_run(parse("--schedule one-peer-exp --algorithm dpsgd")));
  // The checkpoint's run identity names a schedule (and is unchanged without one).
  CHECK_THAT(run_identity(parse("--schedule one-peer-exp"), "malcom"), Catch::Contains("schedule=one-peer-exp"));
  CHECK(run_identity(parse(""), "malcom").find("schedule") == std::string::npos);
}
