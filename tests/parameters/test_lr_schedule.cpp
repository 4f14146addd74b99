// Learning-rate schedules (decopt/optimizer/lr_schedule.hpp): the formulas at their boundary
// rounds, composition after a warm-up, and validation.
#include <catch2/catch.hpp>
#include <cmath>
#include <decopt/decopt.hpp>
#include <limits>
#include <numbers>

using namespace decopt;
using Catch::Contains;

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

TEST_CASE("schedules satisfy LrSchedule", "[parameters][schedule]") {
  STATIC_REQUIRE(LrSchedule<schedule::Constant>);
  STATIC_REQUIRE(LrSchedule<schedule::Step>);
  STATIC_REQUIRE(LrSchedule<schedule::Cosine>);
  STATIC_REQUIRE(LrSchedule<schedule::LinearWarmup<>>);
  STATIC_REQUIRE(LrSchedule<schedule::LinearWarmup<schedule::LinearWarmup<schedule::Step>>>);
  STATIC_REQUIRE_FALSE(LrSchedule<SGD>);
}

TEST_CASE("Constant and Step at their boundaries", "[parameters][schedule]") {
  CHECK(schedule::Constant{}.lr(0, 0.1) == 0.1);
  CHECK(schedule::Constant{}.lr(1'000'000, 0.1) == 0.1);

  const schedule::Step step{.gamma = 0.5, .every = 3};
  CHECK(step.lr(0, 0.8) == 0.8);
  CHECK(step.lr(2, 0.8) == 0.8);  // last round of the first period
  CHECK(step.lr(3, 0.8) == 0.4);  // first multiplication
  CHECK(step.lr(5, 0.8) == 0.4);
  CHECK(step.lr(6, 0.8) == 0.2);
  CHECK(step.lr(30, 0.8) == Approx(0.8 / 1024.0).epsilon(1e-15));
  CHECK(schedule::Step{.gamma = 0.1, .every = 1}.lr(2, 1.0) == Approx(0.01).epsilon(1e-15));
}

TEST_CASE("Cosine starts at the base rate, halves at T/2, ends at min_lr and stays there",
          "[parameters][schedule]") {
  const schedule::Cosine cosine{.total_rounds = 10, .min_lr = 0.01};
  const double base = 0.21;
  CHECK(cosine.lr(0, base) == base);
  CHECK(cosine.lr(5, base) == Approx((base + 0.01) / 2).epsilon(1e-14));
  CHECK(cosine.lr(10, base) == 0.01);
  CHECK(cosine.lr(11, base) == 0.01);
  CHECK(cosine.lr(1'000, base) == 0.01);
  CHECK(cosine.lr(9, base) ==
        Approx(0.01 + (base - 0.01) * (1 + std::cos(std::numbers::pi * 0.9)) / 2).epsilon(1e-14));
  for (long t = 0; t < 10; ++t) CHECK(cosine.lr(t + 1, base) < cosine.lr(t, base));
  CHECK(schedule::Cosine{.total_rounds = 1}.lr(0, 0.5) == 0.5);
  CHECK(schedule::Cosine{.total_rounds = 1}.lr(1, 0.5) == 0.0);
  CHECK(schedule::Cosine{.total_rounds = 4, .min_lr = 0.3}.lr(2, 0.3) == 0.3);  // min_lr = base: constant
}

TEST_CASE("LinearWarmup ramps to the base rate, then runs the next schedule from its round 0",
          "[parameters][schedule]") {
  const schedule::LinearWarmup warmup{.warmup_rounds = 4, .then = schedule::Cosine{.total_rounds = 10}};
  const double base = 0.4;
  CHECK(warmup.lr(0, base) == Approx(0.1).epsilon(1e-15));  // never a zero step
  CHECK(warmup.lr(1, base) == Approx(0.2).epsilon(1e-15));
  CHECK(warmup.lr(3, base) == base);  // the last warm-up round reaches the base rate
  CHECK(warmup.lr(4, base) == base);  // cosine's round 0
  CHECK(warmup.lr(9, base) == Approx(base / 2).epsilon(1e-14));  // cosine's round 5
  CHECK(warmup.lr(14, base) == 0.0);                             // cosine's round 10
  CHECK(schedule::LinearWarmup{}.lr(0, base) == base);           // W = 0: the following schedule only
  const schedule::LinearWarmup<schedule::Step> then_step{.warmup_rounds = 2,
                                                         .then = {.gamma = 0.5, .every = 2}};
  CHECK(then_step.lr(0, 1.0) == 0.5);
  CHECK(then_step.lr(1, 1.0) == 1.0);
  CHECK(then_step.lr(3, 1.0) == 1.0);
  CHECK(then_step.lr(4, 1.0) == 0.5);
}

TEST_CASE("bad schedule hyperparameters and arguments are refused with ConfigError",
          "[parameters][schedule]") {
  CHECK_THROWS_WITH(schedule::Step{.gamma = 0.0}.lr(0, 0.1),
                    Contains("schedule::Step: gamma must be finite and > 0"));
  CHECK_THROWS_AS(schedule::Step{.gamma = -0.5}.validate(), ConfigError);
  CHECK_THROWS_AS(schedule::Step{.gamma = kNaN}.validate(), ConfigError);
  CHECK_THROWS_WITH(schedule::Step{.every = 0}.lr(0, 0.1), Contains("every must be >= 1 (got 0)"));
  CHECK_THROWS_WITH(schedule::Cosine{.total_rounds = 0}.lr(0, 0.1), Contains("total_rounds must be >= 1"));
  CHECK_THROWS_WITH((schedule::Cosine{.total_rounds = 5, .min_lr = -0.1}.validate()), Contains("min_lr"));
  CHECK_THROWS_AS((schedule::Cosine{.total_rounds = 5, .min_lr = kNaN}.validate()), ConfigError);
  CHECK_THROWS_WITH((schedule::Cosine{.total_rounds = 5, .min_lr = 0.2}.lr(0, 0.1)),
                    Contains("min_lr 0.200000 is above base_lr"));
  CHECK_THROWS_WITH(schedule::LinearWarmup{.warmup_rounds = -1}.lr(0, 0.1),
                    Contains("warmup_rounds must be >= 0"));
  CHECK_THROWS_WITH(
      (schedule::LinearWarmup<schedule::Step>{.warmup_rounds = 2, .then = {.every = 0}}.validate()),
      Contains("schedule::Step: every"));
  CHECK_THROWS_WITH(schedule::Constant{}.lr(-1, 0.1), Contains("round must be >= 0 (got -1)"));
  CHECK_THROWS_WITH(schedule::Cosine{}.lr(0, kNaN), Contains("base_lr"));
  CHECK_THROWS_AS(schedule::Constant{}.lr(0, -0.1), ConfigError);
  CHECK_THROWS_AS(schedule::LinearWarmup{.warmup_rounds = 3}.lr(0, std::numeric_limits<double>::infinity()),
                  ConfigError);
}
