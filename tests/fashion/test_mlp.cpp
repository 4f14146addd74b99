// Tests for fashion/mlp.hpp: the analytic gradient against central finite differences (double,
// tight) and against the double model (float), per-sample gradients against the batch gradient,
// numerically stable softmax, chunked evaluation, size checks, and that SGD actually learns.
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>
#include <vector>

#include "eigen_checks.hpp"  // before any Eigen header: same Eigen settings in every file
#include "fashion/batches.hpp"
#include "fashion/mlp.hpp"
#include "fashion_test_util.hpp"

using namespace decopt::examples;
using decopt::Rng;

namespace {

template <class Scalar>
struct Problem {
  BasicMlp<Scalar> mlp;
  std::vector<Scalar> params;
  Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> x;
  std::vector<std::uint8_t> labels;
};

/// A small model with random weights and non-zero biases on a random batch.
template <class Scalar>
Problem<Scalar> random_problem(int inputs, int hidden, int classes, int batch, std::uint64_t seed) {
  Problem<Scalar> p{BasicMlp<Scalar>(inputs, hidden, classes), {}, {}, {}};
  Rng rng(seed);
  p.params.resize(p.mlp.parameter_count());
  p.mlp.initialize(p.params, rng);
  // Biases away from zero so their gradient is exercised too.
  for (std::size_t i = p.mlp.b1_offset(); i < p.mlp.w2_offset(); ++i)
    p.params[i] = Scalar(0.1 * rng.normal());
  for (std::size_t i = p.mlp.b2_offset(); i < p.params.size(); ++i) p.params[i] = Scalar(0.5 * rng.normal());
  p.x.resize(inputs, batch);
  for (Eigen::Index i = 0; i < p.x.size(); ++i) p.x.data()[i] = Scalar(rng.normal());
  p.labels.resize(std::size_t(batch));
  for (auto& y : p.labels) y = static_cast<std::uint8_t>(rng.below(std::uint64_t(classes)));
  return p;
}

}  // namespace

TEST_CASE("Mlp parameter count and layout", "[fashion][mlp]") {
  const Mlp mlp(784, kDefaultHidden, 10);
  REQUIRE(mlp.parameter_count() == 784 * 128 + 128 + 10 * 128 + 10);
  REQUIRE(mlp.parameter_count() == 101770);
  REQUIRE(mlp.b1_offset() == 784 * 128);
  REQUIRE(mlp.w2_offset() == 784 * 128 + 128);
  REQUIRE(mlp.b2_offset() == 101760);
  REQUIRE_THROWS_AS(Mlp(0, 4, 10), decopt::ConfigError);
  REQUIRE_THROWS_AS(Mlp(4, 0, 10), decopt::ConfigError);
  REQUIRE_THROWS_AS(Mlp(4, 4, 1), decopt::ConfigError);
  REQUIRE_THROWS_AS(Mlp(4, 4, 257), decopt::ConfigError);
}

TEST_CASE("initialize draws He and Glorot weights and zero biases, reproducibly", "[fashion][mlp]") {
  const Mlp mlp(784, 128, 10);
  std::vector<float> a(mlp.parameter_count()), b(mlp.parameter_count());
  Rng r1(9), r2(9);
  mlp.initialize(a, r1);
  mlp.initialize(b, r2);
  REQUIRE(a == b);
  const Eigen::Map<const Eigen::VectorXf> w1(a.data(), 784 * 128);
  const Eigen::Map<const Eigen::VectorXf> w2(a.data() + mlp.w2_offset(), 10 * 128);
  REQUIRE(std::sqrt(w1.squaredNorm() / double(w1.size())) == Approx(std::sqrt(2.0 / 784)).epsilon(0.02));
  REQUIRE(std::sqrt(w2.squaredNorm() / double(w2.size())) == Approx(std::sqrt(2.0 / 138)).epsilon(0.1));
  for (std::size_t i = mlp.b1_offset(); i < mlp.w2_offset(); ++i) REQUIRE(a[i] == 0.0f);
  for (std::size_t i = mlp.b2_offset(); i < a.size(); ++i) REQUIRE(a[i] == 0.0f);
}

TEST_CASE("The gradient equals central finite differences (double)", "[fashion][mlp]") {
  auto p = random_problem<double>(6, 5, 4, 7, 11);
  std::vector<double> grad(p.params.size());
  const double loss = p.mlp.loss_and_gradient(p.params, p.x, p.labels, grad);
  REQUIRE(loss == Approx(p.mlp.loss(p.params, p.x, p.labels)).epsilon(1e-14));
  const double eps = 1e-6;
  double max_abs = 0.0;
  for (std::size_t i = 0; i < p.params.size(); ++i) {
    const double saved = p.params[i];
    p.params[i] = saved + eps;
    const double up = p.mlp.loss(p.params, p.x, p.labels);
    p.params[i] = saved - eps;
    const double down = p.mlp.loss(p.params, p.x, p.labels);
    p.params[i] = saved;
    const double fd = (up - down) / (2 * eps);
    INFO("parameter " << i);
    REQUIRE(std::abs(grad[i] - fd) <= 1e-7);
    max_abs = std::max(max_abs, std::abs(fd));
  }
  REQUIRE(max_abs > 1e-2);  // the check compared real gradients, not zeros
}

TEST_CASE("The float gradient matches finite differences and the double model", "[fashion][mlp]") {
  auto pd = random_problem<double>(10, 8, 3, 9, 23);
  BasicMlp<float> mlp(10, 8, 3);
  std::vector<float> params(pd.params.begin(), pd.params.end());
  const Eigen::MatrixXf x = pd.x.cast<float>();
  std::vector<float> grad(params.size());
  std::vector<double> grad_d(params.size());
  const double loss = mlp.loss_and_gradient(params, x, pd.labels, grad);
  // The double model at the float parameters is the exact reference.
  std::vector<double> params_d(params.begin(), params.end());
  const double loss_d = pd.mlp.loss_and_gradient(params_d, x.cast<double>(), pd.labels, grad_d);
  REQUIRE(loss == Approx(loss_d).epsilon(1e-6));
  for (std::size_t i = 0; i < params.size(); ++i) REQUIRE(grad[i] == Approx(grad_d[i]).margin(2e-6));
  // Finite differences in float itself, with a step large enough for float rounding.
  const float eps = 1e-3f;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const float saved = params[i];
    params[i] = saved + eps;
    const double up = mlp.loss(params, x, pd.labels);
    params[i] = saved - eps;
    const double down = mlp.loss(params, x, pd.labels);
    params[i] = saved;
    INFO("parameter " << i);
    REQUIRE(grad[i] == Approx((up - down) / (2.0 * eps)).margin(2e-3));
  }
}

TEST_CASE("per_sample_gradients: each column is that sample's gradient, their mean the batch gradient",
          "[fashion][mlp]") {
  auto p = random_problem<float>(12, 7, 5, 6, 5);
  std::vector<float> grad(p.params.size());
  const double loss = p.mlp.loss_and_gradient(p.params, p.x, p.labels, grad);
  Eigen::MatrixXf per(p.params.size(), 6);
  per.setConstant(123.0f);  // overwritten, not accumulated
  REQUIRE(p.mlp.per_sample_gradients(p.params, p.x, p.labels, per) == Approx(loss).epsilon(1e-12));
  const Eigen::VectorXf mean = per.rowwise().mean();
  const Eigen::Map<const Eigen::VectorXf> batch(grad.data(), Eigen::Index(grad.size()));
  REQUIRE((mean - batch).cwiseAbs().maxCoeff() <= 1e-6f * std::max(1.0f, batch.cwiseAbs().maxCoeff()));
  std::vector<float> single(p.params.size());
  for (int b = 0; b < 6; ++b) {
    p.mlp.loss_and_gradient(p.params, p.x.col(b), std::span(p.labels).subspan(std::size_t(b), 1), single);
    const Eigen::Map<const Eigen::VectorXf> expected(single.data(), Eigen::Index(single.size()));
    REQUIRE((per.col(b) - expected).cwiseAbs().maxCoeff() <= 1e-6f);
  }
  // The samples' gradients differ: the columns are not one gradient repeated.
  REQUIRE((per.col(0) - per.col(1)).norm() > 1e-3f);
}

TEST_CASE("Softmax cross-entropy is stable for huge logits", "[fashion][mlp]") {
  const Mlp mlp(3, 2, 3);
  std::vector<float> params(mlp.parameter_count(), 0.0f);
  params[mlp.b2_offset() + 0] = 1000.0f;
  params[mlp.b2_offset() + 1] = 0.0f;
  params[mlp.b2_offset() + 2] = -1000.0f;
  const Eigen::MatrixXf x = Eigen::MatrixXf::Zero(3, 3);
  const std::vector<std::uint8_t> labels{0, 1, 2};
  std::vector<float> grad(params.size());
  // Losses 0, 1000 and 2000: mean 1000; a naive exp() would overflow to inf / NaN.
  REQUIRE(mlp.loss_and_gradient(params, x, labels, grad) == Approx(1000.0));
  for (float g : grad) REQUIRE(std::isfinite(g));
  // Every sample predicts (1, 0, 0), so ∂L/∂b2 = (1, 0, 0) − mean(onehot) = (2/3, −1/3, −1/3).
  REQUIRE(grad[mlp.b2_offset() + 0] == Approx(2.0 / 3.0));
  REQUIRE(grad[mlp.b2_offset() + 1] == Approx(-1.0 / 3.0));
  REQUIRE(grad[mlp.b2_offset() + 2] == Approx(-1.0 / 3.0));
  // All-zero parameters: uniform prediction, loss log(classes).
  std::fill(params.begin(), params.end(), 0.0f);
  REQUIRE(mlp.loss(params, x, labels) == Approx(std::log(3.0)));
}

TEST_CASE("evaluate over chunks equals one pass; blocks of a bigger matrix are read in place",
          "[fashion][mlp]") {
  auto p = random_problem<float>(20, 9, 4, 1300, 3);  // > 2 evaluation chunks of 512
  std::vector<float> grad(p.params.size());
  const double loss = p.mlp.loss_and_gradient(p.params, p.x, p.labels, grad);
  const Evaluation e = p.mlp.evaluate(p.params, p.x, p.labels);
  REQUIRE(e.loss == Approx(loss).epsilon(1e-9));
  // The reference accuracy from logits computed here with plain Eigen expressions.
  const Eigen::Map<const Eigen::MatrixXf> w1(p.params.data(), 9, 20);
  const Eigen::Map<const Eigen::VectorXf> b1(p.params.data() + p.mlp.b1_offset(), 9);
  const Eigen::Map<const Eigen::MatrixXf> w2(p.params.data() + p.mlp.w2_offset(), 4, 9);
  const Eigen::Map<const Eigen::VectorXf> b2(p.params.data() + p.mlp.b2_offset(), 4);
  const Eigen::MatrixXf logits = (w2 * ((w1 * p.x).colwise() + b1).cwiseMax(0.0f)).colwise() + b2;
  int correct = 0;
  for (Eigen::Index b = 0; b < logits.cols(); ++b) {
    Eigen::Index best = 0;
    logits.col(b).maxCoeff(&best);
    correct += best == p.labels[std::size_t(b)];
  }
  REQUIRE(e.accuracy == Approx(correct / 1300.0));
  REQUIRE(p.mlp.accuracy(p.params, p.x, p.labels) == e.accuracy);
  // A middle block of columns (a view with an outer stride) gives the same as a copy of it.
  std::vector<float> g_block(p.params.size()), g_copy(p.params.size());
  const Eigen::MatrixXf copy = p.x.middleCols(100, 40);
  const auto labels = std::span<const std::uint8_t>(p.labels).subspan(100, 40);
  REQUIRE(p.mlp.loss_and_gradient(p.params, p.x.middleCols(100, 40), labels, g_block) ==
          p.mlp.loss_and_gradient(p.params, copy, labels, g_copy));
  REQUIRE(g_block == g_copy);
}

TEST_CASE("Mlp rejects mismatched sizes and labels out of range", "[fashion][mlp]") {
  const Mlp mlp(4, 3, 2);
  std::vector<float> params(mlp.parameter_count()), grad(mlp.parameter_count()), short_buffer(5);
  const Eigen::MatrixXf x = Eigen::MatrixXf::Ones(4, 2);
  const std::vector<std::uint8_t> labels{0, 1};
  REQUIRE_NOTHROW(mlp.loss_and_gradient(params, x, labels, grad));
  REQUIRE_THROWS_WITH(mlp.loss_and_gradient(short_buffer, x, labels, grad),
                      Catch::Contains("params has 5 elements, expected 23"));
  REQUIRE_THROWS_AS(mlp.loss_and_gradient(params, x, labels, short_buffer), decopt::ConfigError);
  REQUIRE_THROWS_AS(mlp.loss_and_gradient(params, Eigen::MatrixXf::Ones(3, 2), labels, grad),
                    decopt::ConfigError);
  REQUIRE_THROWS_AS(mlp.loss_and_gradient(params, x, std::vector<std::uint8_t>{0}, grad),
                    decopt::ConfigError);
  REQUIRE_THROWS_WITH(mlp.loss_and_gradient(params, x, std::vector<std::uint8_t>{0, 2}, grad),
                      Catch::Contains("label 2 is not below classes = 2"));
  Eigen::MatrixXf wrong(mlp.parameter_count(), 3);
  REQUIRE_THROWS_AS(mlp.per_sample_gradients(params, x, labels, wrong), decopt::ConfigError);
}

TEST_CASE("SGD on the MLP separates a synthetic 10-class problem", "[fashion][mlp][train]") {
  // 10 Gaussian clusters in 20 dimensions, centres 3 standard deviations apart on average.
  const int dims = 20, classes = 10, samples = 2000;
  Rng rng(2024);
  Eigen::MatrixXf centres(dims, classes);
  for (Eigen::Index i = 0; i < centres.size(); ++i) centres.data()[i] = float(rng.normal());
  Dataset data;
  data.rows = 1;
  data.cols = dims;
  data.images.resize(dims, samples);
  data.labels.resize(samples);
  for (int s = 0; s < samples; ++s) {
    const auto y = static_cast<std::uint8_t>(s % classes);
    data.labels[std::size_t(s)] = y;
    for (int d = 0; d < dims; ++d) data.images(d, s) = 2.0f * centres(d, y) + 0.5f * float(rng.normal());
  }
  const Mlp mlp(dims, 16, classes);
  std::vector<float> params(mlp.parameter_count()), grad(params.size());
  mlp.initialize(params, rng);
  const Evaluation before = mlp.evaluate(params, data);
  std::vector<int> all(samples);
  std::iota(all.begin(), all.end(), 0);
  BatchSampler sampler(all, 32, 1);
  Eigen::MatrixXf x(dims, 32);
  std::vector<std::uint8_t> y(32);
  for (int step = 0; step < 300; ++step) {
    sampler.next(data, x, y);
    mlp.loss_and_gradient(params, x, y, grad);
    for (std::size_t i = 0; i < params.size(); ++i) params[i] -= 0.05f * grad[i];
  }
  const Evaluation after = mlp.evaluate(params, data);
  INFO("loss " << before.loss << " -> " << after.loss << ", accuracy " << before.accuracy << " -> "
               << after.accuracy);
  REQUIRE(before.accuracy < 0.4);
  REQUIRE(after.loss < 0.2 * before.loss);
  REQUIRE(after.accuracy > 0.97);
}

TEST_CASE("SGD on 2000 real Fashion-MNIST images reaches 70% test accuracy",
          "[fashion][mlp][train][dataset]") {
  const Dataset& train = fashion_test::train_set();
  const Dataset& test = fashion_test::test_set();
  const Mlp mlp(784, 64, 10);
  std::vector<float> params(mlp.parameter_count()), grad(params.size());
  Rng rng(7);
  mlp.initialize(params, rng);
  const auto test_x = test.images.leftCols(2000);
  const auto test_y = std::span<const std::uint8_t>(test.labels).first(2000);
  const Evaluation before = mlp.evaluate(params, test_x, test_y);
  std::vector<int> first(2000);
  std::iota(first.begin(), first.end(), 0);
  BatchSampler sampler(first, 32, 3);
  Eigen::MatrixXf x(784, 32);
  std::vector<std::uint8_t> y(32);
  for (int step = 0; step < 400; ++step) {
    sampler.next(train, x, y);
    mlp.loss_and_gradient(params, x, y, grad);
    for (std::size_t i = 0; i < params.size(); ++i) params[i] -= 0.1f * grad[i];
  }
  const Evaluation after = mlp.evaluate(params, test_x, test_y);
  INFO("test loss " << before.loss << " -> " << after.loss << ", accuracy " << before.accuracy << " -> "
                    << after.accuracy);
  REQUIRE(after.loss < 0.35 * before.loss);
  REQUIRE(after.accuracy > 0.70);
}

namespace {
/// Forbids Eigen heap allocation for its lifetime (see eigen_checks.hpp), restoring it on exit.
struct NoEigenMalloc {
  NoEigenMalloc() { Eigen::internal::set_is_malloc_allowed(false); }
  ~NoEigenMalloc() { Eigen::internal::set_is_malloc_allowed(true); }
  NoEigenMalloc(const NoEigenMalloc&) = delete;
  NoEigenMalloc& operator=(const NoEigenMalloc&) = delete;
};
}  // namespace

TEST_CASE("A training step at a fixed batch size allocates nothing", "[fashion][mlp][batches]") {
  {
    NoEigenMalloc guard;  // the check is live: an Eigen allocation now throws
    REQUIRE_THROWS_AS(Eigen::MatrixXf(64, 64), fashion_test::EigenAssertion);
  }
  Dataset data;
  data.rows = 28;
  data.cols = 28;
  data.images = Eigen::MatrixXf::Random(784, 700).cwiseAbs();
  data.labels.resize(700);
  for (std::size_t s = 0; s < data.labels.size(); ++s) data.labels[s] = static_cast<std::uint8_t>(s % 10);
  const Mlp mlp(784, kDefaultHidden, 10);
  std::vector<float> params(mlp.parameter_count()), grad(params.size());
  Rng rng(4);
  mlp.initialize(params, rng);
  std::vector<int> node(300);
  std::iota(node.begin(), node.end(), 200);
  BatchSampler sampler(node, kDefaultBatchSize, 8);
  Eigen::MatrixXf x(784, kDefaultBatchSize), per(Eigen::Index(params.size()), kDefaultBatchSize);
  std::vector<std::uint8_t> y(kDefaultBatchSize);
  // The first calls size the workspace (the batch, and the evaluation chunk).
  sampler.next(data, x, y);
  mlp.loss_and_gradient(params, x, y, grad);
  mlp.per_sample_gradients(params, x, y, per);
  mlp.evaluate(params, data);
  double losses = 0.0;
  Evaluation e;
  {
    NoEigenMalloc guard;
    for (int step = 0; step < 12; ++step) {  // crosses an epoch boundary of the sampler (300 / 32)
      sampler.next(data, x, y);
      losses += mlp.loss_and_gradient(params, x, y, grad);
      losses += mlp.per_sample_gradients(params, x, y, per);
      for (std::size_t i = 0; i < params.size(); ++i) params[i] -= 0.01f * grad[i];
    }
    e = mlp.evaluate(params, data);
  }
  REQUIRE(sampler.epoch() == 1);
  REQUIRE(std::isfinite(losses));
  REQUIRE(losses > 0.0);
  REQUIRE(e.loss > 0.0);
}
