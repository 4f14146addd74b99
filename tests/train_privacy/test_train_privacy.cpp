// train/privacy.hpp: decopt-train's private gradient (per-sample gradients of the MLP, clipped,
// noised), its accounting, its JSON fields and its flags — on a tiny synthetic problem, so the
// clipping can be checked against a manual computation from independent one-sample gradients.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "train/privacy.hpp"

using namespace decopt;
using namespace decopt::train;

namespace {

/// 16 inputs → 12 hidden → 3 classes (P = 243), a batch of 8 Gaussian samples with random labels.
struct TinyProblem {
  examples::Mlp mlp{16, 12, 3};
  std::vector<float> params;
  Eigen::MatrixXf x;
  std::vector<std::uint8_t> labels;

  explicit TinyProblem(std::uint64_t seed = 7, int batch = 8) : params(mlp.parameter_count()), x(16, batch) {
    Rng rng(seed);
    mlp.initialize(params, rng);
    rng.fill_normal(std::span<float>(x.data(), static_cast<std::size_t>(x.size())), 1.5);
    for (int b = 0; b < batch; ++b) labels.push_back(static_cast<std::uint8_t>(rng.below(3)));
  }
  [[nodiscard]] std::size_t p() const { return params.size(); }
  [[nodiscard]] int batch() const { return static_cast<int>(x.cols()); }

  /// ∇ℓ_b from a batch of one sample — loss_and_gradient's path, not per_sample_gradients'.
  [[nodiscard]] Eigen::VectorXd one_sample_gradient(int b) const {
    std::vector<float> g(p());
    const std::uint8_t label[1] = {labels[static_cast<std::size_t>(b)]};
    mlp.loss_and_gradient(params, x.col(b), label, g);
    return Eigen::Map<const Eigen::VectorXf>(g.data(), static_cast<Eigen::Index>(g.size())).cast<double>();
  }
};

DpSettings settings(const std::string& rule, double clip) {
  DpSettings dp;
  dp.clip = clip;
  dp.noise = 1.0;
  dp.clipping = rule;
  return dp;
}

Eigen::Map<const Eigen::VectorXf> as_vector(const std::vector<float>& v) {
  return {v.data(), static_cast<Eigen::Index>(v.size())};
}

}  // namespace

TEST_CASE("Without noise and with C far above every gradient, Abadi clipping is the plain mean gradient", "[train][privacy]") {
  TinyProblem t;
  std::vector<float> plain(t.p()), priv(t.p());
  const double plain_loss = t.mlp.loss_and_gradient(t.params, t.x, t.labels, plain);
  PrivateGradient g(settings("abadi", 1e30), /*noise=*/0.0, t.mlp, t.batch(), /*seed=*/1);
  const double loss = g(t.params, t.x, t.labels, priv);
  CHECK(loss == Approx(plain_loss).epsilon(1e-6));
  CHECK(g.last_stats().fraction_clipped == 0.0);
  CHECK(as_vector(plain).norm() > 0.01);  // a real gradient, not two zero vectors
  CHECK((as_vector(priv) - as_vector(plain)).norm() <= 1e-5 * as_vector(plain).norm());
}

TEST_CASE("Without noise, the private gradient is the mean of the rule's terms, each of norm <= C", "[train][privacy]") {
  TinyProblem t;
  // The manual reference: one-sample gradients and each rule's formula, in double.
  std::vector<Eigen::VectorXd> raw;
  double smallest = INFINITY, largest = 0;
  for (int b = 0; b < t.batch(); ++b) {
    raw.push_back(t.one_sample_gradient(b));
    smallest = std::min(smallest, raw.back().norm());
    largest = std::max(largest, raw.back().norm());
  }
  const double clip = std::sqrt(smallest * largest);  // between the norms: Abadi clips some, not all
  const double r = 0.1, gamma = 0.01;
  struct Case {
    std::string rule;
    double (*factor)(double norm, double c, double r_value, double gamma_value);
  };
  const std::vector<Case> cases{
      {"abadi", [](double n, double c, double, double) { return n > c ? c / n : 1.0; }},
      {"nsgd", [](double n, double c, double rr, double) { return c / (n + rr); }},
      {"autos", [](double n, double c, double, double gg) { return c / (n + gg); }},
      {"psac", [](double n, double c, double rr, double) { return c / (n + rr / (n + rr)); }},
  };
  for (const auto& rule_case : cases) {
    CAPTURE(rule_case.rule, clip, smallest, largest);
    DpSettings dp = settings(rule_case.rule, clip);
    dp.r = r;
    PrivateGradient g(dp, /*noise=*/0.0, t.mlp, t.batch(), /*seed=*/1);
    std::vector<float> out(t.p());
    g(t.params, t.x, t.labels, out);

    Eigen::VectorXd expected = Eigen::VectorXd::Zero(static_cast<Eigen::Index>(t.p()));
    for (const auto& grad : raw) {
      const Eigen::VectorXd term = rule_case.factor(grad.norm(), clip, r, gamma) * grad;
      CHECK(term.norm() <= clip * (1 + 1e-12));
      expected += term / t.batch();
    }
    CHECK((as_vector(out).cast<double>() - expected).norm() <= 1e-4 * expected.norm());
    CHECK(as_vector(out).norm() <= clip * (1 + 1e-5));  // a mean of terms inside the ball
    CHECK(g.last_stats().max_norm == Approx(largest).epsilon(1e-4));
    if (rule_case.rule == "abadi") {
      CHECK(g.last_stats().fraction_clipped > 0.0);
      CHECK(g.last_stats().fraction_clipped < 1.0);
    }
  }
}

TEST_CASE("The per-sample workspace takes any batch up to its size, and refuses a larger one", "[train][privacy]") {
  TinyProblem t(7, 8);
  PrivateGradient g(settings("psac", 1.0), 0.0, t.mlp, 8, 1);
  std::vector<float> part(t.p()), reference(t.p());
  g(t.params, t.x.leftCols(5), std::span(t.labels).first(5), part);
  CHECK(g.last_per_sample().cols() == 5);
  PrivateGradient five(settings("psac", 1.0), 0.0, t.mlp, 5, 1);
  five(t.params, t.x.leftCols(5), std::span(t.labels).first(5), reference);
  CHECK(part == reference);
  TinyProblem big(7, 9);
  REQUIRE_THROWS_WITH(g(big.params, big.x, big.labels, part), Catch::Contains("exceeds the workspace"));
}

TEST_CASE("The noise is N(0, (sigma C / B)^2) per coordinate and fixed by the seed", "[train][privacy]") {
  TinyProblem t;
  const double clip = 0.5, sigma = 2.0;
  std::vector<float> clean(t.p()), a(t.p()), b(t.p()), c(t.p());
  PrivateGradient(settings("psac", clip), 0.0, t.mlp, t.batch(), 11)(t.params, t.x, t.labels, clean);
  PrivateGradient ga(settings("psac", clip), sigma, t.mlp, t.batch(), 11);
  PrivateGradient gb(settings("psac", clip), sigma, t.mlp, t.batch(), 11);
  PrivateGradient gc(settings("psac", clip), sigma, t.mlp, t.batch(), 12);
  ga(t.params, t.x, t.labels, a);
  gb(t.params, t.x, t.labels, b);
  gc(t.params, t.x, t.labels, c);
  CHECK(a == b);
  CHECK(a != c);
  // Next step: the streams move on together, and away from the first step's draws.
  std::vector<float> a2(t.p()), b2(t.p());
  ga(t.params, t.x, t.labels, a2);
  gb(t.params, t.x, t.labels, b2);
  CHECK(a2 == b2);
  CHECK(a2 != a);

  // A resumed run restores the stream instead of restarting it: the next draws are the ones the
  // uninterrupted run makes, not the first step's again.
  PrivateGradient resumed(settings("psac", clip), sigma, t.mlp, t.batch(), 11);
  resumed.set_noise_state(gc.noise_state());  // any other state first: set_noise_state must replace it
  resumed.set_noise_state(ga.noise_state());
  std::vector<float> a3(t.p()), r3(t.p());
  ga(t.params, t.x, t.labels, a3);
  resumed(t.params, t.x, t.labels, r3);
  CHECK(r3 == a3);
  CHECK(r3 != a);

  const Eigen::VectorXd noise = (as_vector(a) - as_vector(clean)).cast<double>();
  const double expected_sd = sigma * clip / t.batch();
  const double sd = std::sqrt(noise.squaredNorm() / static_cast<double>(noise.size()));
  CAPTURE(sd, expected_sd);
  CHECK(std::abs(noise.mean()) < 4 * expected_sd / std::sqrt(static_cast<double>(noise.size())));
  CHECK(sd == Approx(expected_sd).epsilon(0.15));  // 243 draws: the estimate's sd is ≈ 4.5%
}

TEST_CASE("Each node's noise stream is its own and follows from the run's seed", "[train][privacy]") {
  CHECK(PrivateGradient::stream_seed(1, 0) == PrivateGradient::stream_seed(1, 0));
  CHECK(PrivateGradient::stream_seed(1, 0) != PrivateGradient::stream_seed(1, 1));
  CHECK(PrivateGradient::stream_seed(1, 0) != PrivateGradient::stream_seed(2, 0));
  // The derivation decopt-train used before stream_seed existed, so runs keep their bits.
  CHECK(PrivateGradient::stream_seed(5, 3) == Rng::derive(5, {0x6470ULL, 3ULL}).next());
}

TEST_CASE("The run's epsilon is the RDP accountant's, at q = B / smallest share for rounds x local steps", "[train][privacy]") {
  DpSettings dp = settings("psac", 1.0);
  dp.noise = 1.1;
  privacy::RdpAccountant accountant;
  accountant.step(1.1, 32.0 / 7500.0, 470);
  const double direct = accountant.epsilon(1e-5);
  CHECK(epsilon_for_run(dp, 32.0 / 7500.0, 470) == direct);
  CHECK(epsilon_for_run(dp, 1.1, 32.0 / 7500.0, 470) == direct);
  dp.delta = 1e-6;  // a smaller delta costs more epsilon
  CHECK(epsilon_for_run(dp, 32.0 / 7500.0, 470) > direct);
  dp.delta = 1e-5;

  CHECK(dp_sample_rate(32, 7500) == 32.0 / 7500.0);
  CHECK(dp_sample_rate(64, 50) == 1.0);
  const DpPlan plan = plan_dp_run(dp, 32, 7500, 470);
  CHECK(plan.sample_rate == 32.0 / 7500.0);
  CHECK(plan.steps == 470);
  CHECK(plan.noise == 1.1);
  CHECK(plan.epsilon == direct);

  // --dp-epsilon: the smallest sigma whose epsilon is at most the target.
  DpSettings target = settings("abadi", 1.0);
  target.noise = 0;
  target.target_epsilon = 3.0;
  const DpPlan chosen = plan_dp_run(target, 32, 7500, 705);
  CHECK(chosen.epsilon <= 3.0);
  CHECK(chosen.epsilon > 2.95);
  CHECK(chosen.noise == privacy::find_noise_multiplier(3.0, 1e-5, 32.0 / 7500.0, 705));
  CHECK(epsilon_for_run(target, 32.0 / 7500.0, 705) == chosen.epsilon);
  target.target_epsilon = 8.0;  // a looser budget needs less noise
  CHECK(plan_dp_run(target, 32, 7500, 705).noise < chosen.noise);
}

TEST_CASE("The JSON fields and the summary line of a private run; nothing when privacy is off", "[train][privacy]") {
  DpSettings dp = settings("psac", 1.0);
  dp.noise = 1.1;
  CHECK(dp_json_fields(dp, 3.2) == R"(,"dp_clip":1,"dp_noise":1.1,"clipping":"psac","epsilon":3.2,"delta":1e-05)");
  CHECK(dp_json_fields(dp, 0.6108708382, 2.999996369) ==
        R"(,"dp_clip":1,"dp_noise":0.6108708382,"clipping":"psac","epsilon":2.999996369,"delta":1e-05)");
  CHECK(dp_summary(dp, 1.1, 3.2191) == "differential privacy: psac clipping, C = 1, sigma = 1.1: each node is (3.22, 1e-05)-DP");
  DpSettings off;
  CHECK(dp_json_fields(off, 3.2).empty());
  CHECK(dp_summary(off, 0, 0).empty());
}

TEST_CASE("The privacy flags: parsed, validated, and every mistake named", "[train][privacy]") {
  const auto parse = [](const std::string& args) {
    CLI::App app("test");
    DpSettings dp;
    add_dp_flags(app, dp);
    app.parse(args, /*program_name_included=*/false);
    return dp;
  };
  const DpSettings dp = parse("--dp-clip 2 --dp-noise 1.5 --clipping abadi --dp-delta 1e-6 --dp-r 0.2");
  CHECK(dp.enabled());
  CHECK(dp.clip == 2.0);
  CHECK(dp.noise == 1.5);
  CHECK(dp.clipping == "abadi");
  CHECK(dp.delta == 1e-6);
  CHECK(dp.r == 0.2);
  CHECK_NOTHROW(dp.validate());
  CHECK(parse("--dp-clip 1 --dp-epsilon 3").target_epsilon == 3.0);
  CHECK_FALSE(parse("").enabled());
  CHECK_NOTHROW(parse("").validate());

  CHECK_THROWS_AS(parse("--dp-clip 1 --dp-noise 1 --clipping median"), CLI::ValidationError);
  CHECK_THROWS_AS(parse("--dp-clip -1 --dp-noise 1"), CLI::ValidationError);
  CHECK_THROWS_AS(parse("--dp-clip 1 --dp-noise 1 --dp-delta 1"), CLI::ValidationError);
  CHECK_THROWS_AS(parse("--dp-clip 1 --dp-noise 1 --dp-delta x"), CLI::ValidationError);
  CHECK_THROWS_AS(parse("--dp-clip 1 --dp-noise 1 --dp-r 0"), CLI::ValidationError);
  CHECK_THROWS_AS(parse("--dp-clip 1 --dp-noise 1 --dp-epsilon 3"), CLI::ExcludesError);

  REQUIRE_THROWS_WITH(parse("--dp-noise 1").validate(), Catch::Contains("--dp-clip"));
  REQUIRE_THROWS_WITH(parse("--dp-clip 0 --dp-noise 1").validate(), Catch::Contains("--dp-clip"));
  REQUIRE_THROWS_WITH(parse("--dp-epsilon 3").validate(), Catch::Contains("--dp-clip"));
  REQUIRE_THROWS_WITH(parse("--dp-clip 1").validate(), Catch::Contains("--dp-noise"));

  // Settings built in code, past the command line's checks.
  DpSettings bad = settings("median", 1.0);
  REQUIRE_THROWS_WITH(bad.validate(), Catch::Contains("--clipping 'median'"));
  REQUIRE_THROWS_AS(PrivateGradient(bad, 1.0, examples::Mlp(4, 3, 2), 2, 1), ConfigError);
  bad = settings("psac", 1.0);
  bad.delta = 0;
  REQUIRE_THROWS_WITH(bad.validate(), Catch::Contains("--dp-delta"));
  bad = settings("nsgd", 1.0);
  bad.r = -1;
  REQUIRE_THROWS_WITH(bad.validate(), Catch::Contains("--dp-r"));
  bad = settings("psac", 1.0);
  bad.target_epsilon = 3;
  REQUIRE_THROWS_WITH(bad.validate(), Catch::Contains("not both"));
  REQUIRE_THROWS_WITH(PrivateGradient(settings("psac", 1.0), -1.0, examples::Mlp(4, 3, 2), 2, 1),
                      Catch::Contains("noise_multiplier"));
}

TEST_CASE("A privacy flag given but invalid is an error: a private run never silently becomes a non-private one",
          "[train][privacy]") {
  // `--dp-clip nan` used to read as "privacy off": exit 0, no epsilon in the summary.
  DpSettings nan_clip;
  nan_clip.clip = std::nan("");
  nan_clip.noise = 1.0;
  CHECK(nan_clip.enabled());
  REQUIRE_THROWS_WITH(nan_clip.validate(), Catch::Contains("--dp-clip must be a finite number > 0, got nan"));
  nan_clip.noise = 0;
  REQUIRE_THROWS_WITH(nan_clip.validate(), Catch::Contains("--dp-clip"));
  DpSettings negative;
  negative.clip = -1;
  negative.noise = 1;
  REQUIRE_THROWS_WITH(negative.validate(), Catch::Contains("--dp-clip"));
  // Settings of the mechanism without a clip bound are a forgotten --dp-clip, not a request.
  for (const auto& set : std::vector<std::function<void(DpSettings&)>>{
           [](DpSettings& d) { d.delta = 1e-6; }, [](DpSettings& d) { d.r = std::nan(""); },
           [](DpSettings& d) { d.clipping = "abadi"; }, [](DpSettings& d) { d.noise = std::nan(""); },
           [](DpSettings& d) { d.target_epsilon = std::nan(""); }}) {
    DpSettings off;
    set(off);
    CHECK_FALSE(off.enabled());
    REQUIRE_THROWS_WITH(off.validate(), Catch::Contains("need --dp-clip"));
  }

  const auto parse_error = [](const std::string& args) -> std::string {
    CLI::App app("test");
    DpSettings dp;
    add_dp_flags(app, dp);
    try {
      app.parse(args, /*program_name_included=*/false);
    } catch (const CLI::ParseError& e) {
      return e.what();
    }
    return "(accepted)";
  };
  CHECK(parse_error("--dp-clip nan") == "--dp-clip: nan is not a finite number");
  CHECK(parse_error("--dp-clip 0 --dp-noise 1") == "--dp-clip: 0 is not in (0, 1e+06]");
  CHECK(parse_error("--dp-clip 1 --dp-noise nan") == "--dp-noise: nan is not a finite number");
  CHECK(parse_error("--dp-clip 1 --dp-epsilon inf") == "--dp-epsilon: inf is not a finite number");
  CHECK(parse_error("--dp-clip 1 --dp-noise 1 --dp-r nan") == "--dp-r: nan is not a finite number");
  CHECK(parse_error("--dp-clip 1 --dp-noise 1 --dp-delta nan") == "--dp-delta: nan is not a finite number");
  CHECK(parse_error("--dp-clip 1 --dp-noise 1 --dp-delta 1") == "--dp-delta: 1 is not in (0, 1)");
  CHECK(parse_error("--dp-clip 1 --dp-noise 1") == "(accepted)");
}

TEST_CASE("clipping_deviation on the MLP's per-sample gradients measures the update PrivateGradient trains with",
          "[train][privacy][deviation]") {
  // decopt-dp-deviation's measurement: u must be the σ = 0 private gradient of training, and m the
  // mean gradient loss_and_gradient computes, so the deviation is that of the real update.
  TinyProblem t;
  std::vector<float> mean_gradient(t.p());
  t.mlp.loss_and_gradient(t.params, t.x, t.labels, mean_gradient);
  for (const char* rule : {"abadi", "nsgd", "autos", "psac"}) {
    INFO(rule);
    DpSettings dp = settings(rule, 0.05);  // small enough that every rule changes the batch
    PrivateGradient pg(dp, 0.0, t.mlp, t.batch(), 1);
    std::vector<float> update(t.p());
    pg(t.params, t.x, t.labels, update);
    const privacy::ClippingDeviation d =
        std::visit([&](const auto& r) { return privacy::clipping_deviation(pg.last_per_sample(), r); }, pg.rule());
    CHECK(d.update_norm == Approx(as_vector(update).norm()).epsilon(1e-5));
    CHECK(d.mean_norm == Approx(as_vector(mean_gradient).norm()).epsilon(1e-4));
    CHECK(d.absolute == Approx((as_vector(update) - as_vector(mean_gradient)).norm()).epsilon(1e-4));
    CHECK(d.absolute > 0.1 * d.mean_norm);
  }
}
