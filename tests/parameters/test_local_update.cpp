// Local-update policies (decopt/optimizer/local_update.hpp): SGD, heavy ball and Nesterov against
// hand-computed steps, Adam and AdamW against PyTorch's formulas written out in double, bit-exact
// save/load, refusal of bad hyperparameters, sizes and checkpoints, and no allocation per step.
#include <atomic>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <decopt/decopt.hpp>
#include <limits>
#include <new>
#include <vector>

using namespace decopt;
using Catch::Contains;

// Counts the allocations of this test executable, to check that a step allocates nothing. Every
// unaligned form is replaced, so that no pair mixes this malloc/free with another allocator's (the
// sanitizers bring their own nothrow and array forms). Not inlined, so GCC does not pair the new
// expressions it sees with the free() inside.
namespace {
std::atomic<long> allocations{0};
[[gnu::noinline]] void* counted_malloc(std::size_t n) noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
[[gnu::noinline]] void* counted_malloc_or_throw(std::size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
}  // namespace
void* operator new(std::size_t n) { return counted_malloc_or_throw(n); }
void* operator new[](std::size_t n) { return counted_malloc_or_throw(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_malloc(n); }
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { operator delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { operator delete(p); }

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

/// The test problem's gradient: g_k = (x_k − c_k)·s_k, so the trajectory feeds back into g.
template <class T>
T gradient_of(std::size_t k, T x) {
  const T c = static_cast<T>(0.25 * static_cast<double>(k) - 0.5);
  const T s = static_cast<T>(1.0 + 0.5 * static_cast<double>(k % 3));
  return (x - c) * s;
}

std::vector<float> gradient_at(const std::vector<float>& x) {
  std::vector<float> g(x.size());
  for (std::size_t k = 0; k < x.size(); ++k) g[k] = gradient_of(k, x[k]);
  return g;
}

const std::vector<float> kStart = {1.0f, -2.0f, 0.5f, 3.0f, -0.75f};
const std::vector<double> kRates = {0.1, 0.05, 0.08, 0.02, 0.1, 0.07};  // one per step: the caller's schedule

/// Runs the policy over kRates from kStart; returns x.
template <class Policy>
std::vector<float> run(const Policy& policy) {
  auto state = policy.state(kStart.size());
  std::vector<float> x = kStart;
  for (double lr : kRates) {
    const std::vector<float> g = gradient_at(x);
    state.apply(x, g, lr);
  }
  return x;
}

void check_close(const std::vector<float>& got, const std::vector<double>& expected, double tolerance) {
  REQUIRE(got.size() == expected.size());
  for (std::size_t k = 0; k < got.size(); ++k)
    CHECK(static_cast<double>(got[k]) == Approx(expected[k]).margin(tolerance));
}

/// torch.optim.SGD (momentum μ, dampening 0, nesterov flag, weight_decay λ), in double.
std::vector<double> reference_sgd(double mu, bool nesterov, double lambda) {
  std::vector<double> x(kStart.begin(), kStart.end()), m(x.size(), 0.0);
  bool first = true;
  for (double lr : kRates) {
    for (std::size_t k = 0; k < x.size(); ++k) {
      const double d = gradient_of(k, x[k]) + lambda * x[k];
      m[k] = first ? d : mu * m[k] + d;  // PyTorch: buf = d on the first step
      const double step = mu == 0.0 ? d : (nesterov ? d + mu * m[k] : m[k]);
      x[k] -= lr * step;
    }
    first = false;
  }
  return x;
}

/// torch.optim.Adam / AdamW (amsgrad off) as written in torch/optim/adam.py and adamw.py, in double:
///   AdamW: param *= 1 − lr·λ;  Adam: grad += λ·param
///   exp_avg = β1·exp_avg + (1 − β1)·grad;  exp_avg_sq = β2·exp_avg_sq + (1 − β2)·grad²
///   step_size = lr / (1 − β1^t);  denom = sqrt(exp_avg_sq) / sqrt(1 − β2^t) + eps
///   param −= step_size · exp_avg / denom
std::vector<double> reference_adam(double beta1, double beta2, double eps, double lambda, bool decoupled) {
  std::vector<double> result;
  for (std::size_t k = 0; k < kStart.size(); ++k) {  // coordinates are independent
    double x = kStart[k], m = 0.0, v = 0.0;
    int t = 0;
    for (double lr : kRates) {
      ++t;
      double grad = gradient_of(k, x);  // backward() ran before step()
      if (decoupled) {
        x *= 1.0 - lr * lambda;
      } else {
        grad += lambda * x;
      }
      m = beta1 * m + (1.0 - beta1) * grad;
      v = beta2 * v + (1.0 - beta2) * grad * grad;
      const double step_size = lr / (1.0 - std::pow(beta1, t));
      const double denom = std::sqrt(v) / std::sqrt(1.0 - std::pow(beta2, t)) + eps;
      x -= step_size * m / denom;
    }
    result.push_back(x);
  }
  return result;
}

template <class Policy>
std::vector<std::byte> saved(const typename Policy::State& state) {
  std::vector<std::byte> out;
  state.save(out);
  return out;
}

std::vector<std::uint32_t> bits(const std::vector<float>& v) {
  std::vector<std::uint32_t> b;
  for (float x : v) b.push_back(std::bit_cast<std::uint32_t>(x));
  return b;
}

struct NoLoad {
  static constexpr const char* name = "broken";
  void validate() const {}
  struct State {
    void apply(std::span<float>, std::span<const float>, double) {}
    void save(std::vector<std::byte>&) const {}
    std::size_t dimension() const { return 0; }
  };
  State state(std::size_t) const { return {}; }
};

}  // namespace

TEST_CASE("the built-in local updates satisfy LocalUpdate", "[parameters][local]") {
  STATIC_REQUIRE(LocalUpdate<SGD>);
  STATIC_REQUIRE(LocalUpdate<HeavyBall>);
  STATIC_REQUIRE(LocalUpdate<Nesterov>);
  STATIC_REQUIRE(LocalUpdate<Adam>);
  STATIC_REQUIRE(LocalUpdate<AdamW>);
  STATIC_REQUIRE_FALSE(LocalUpdate<NoLoad>);
  STATIC_REQUIRE_FALSE(LocalUpdate<L1Prox>);
  CHECK(std::string(SGD::name) == "sgd");
  CHECK(std::string(HeavyBall::name) == "heavy-ball");
  CHECK(std::string(Nesterov::name) == "nesterov");
  CHECK(std::string(Adam::name) == "adam");
  CHECK(std::string(AdamW::name) == "adamw");
  // PyTorch's defaults.
  CHECK(Adam{}.beta1 == 0.9);
  CHECK(Adam{}.beta2 == 0.999);
  CHECK(Adam{}.eps == 1e-8);
  CHECK(Adam{}.weight_decay == 0.0);
  CHECK(AdamW{}.weight_decay == 0.01);
}

TEST_CASE("SGD, heavy ball and Nesterov match hand-computed steps", "[parameters][local]") {
  // x⁰ = 1, g = 1 every step, η = 0.1, μ = 0.5:
  //   heavy ball  m = 1, 1.5, 1.75;   x = 0.9, 0.75, 0.575
  //   Nesterov    m = 1, 1.5, 1.75;   x = 1 − 0.1(1 + 0.5) = 0.85, 0.85 − 0.1(1 + 0.75) = 0.675,
  //                                       0.675 − 0.1(1 + 0.875) = 0.4875
  //   SGD         x = 0.9, 0.8, 0.7
  auto three_steps = [](auto policy) {
    auto state = policy.state(1);
    std::vector<float> x = {1.0f}, g = {1.0f}, trajectory;
    for (int t = 0; t < 3; ++t) {
      state.apply(x, g, 0.1);
      trajectory.push_back(x[0]);
    }
    return trajectory;
  };
  const auto sgd = three_steps(SGD{});
  const auto heavy = three_steps(HeavyBall{.momentum = 0.5});
  const auto nesterov = three_steps(Nesterov{.momentum = 0.5});
  const std::vector<double> sgd_expected = {0.9, 0.8, 0.7}, heavy_expected = {0.9, 0.75, 0.575},
                            nesterov_expected = {0.85, 0.675, 0.4875};
  for (int t = 0; t < 3; ++t) {
    CHECK(sgd[t] == Approx(sgd_expected[t]).margin(1e-6));
    CHECK(heavy[t] == Approx(heavy_expected[t]).margin(1e-6));
    CHECK(nesterov[t] == Approx(nesterov_expected[t]).margin(1e-6));
  }
  // x⁰ = 2, g = 0, λ = 0.5, η = 0.1: x −= 0.1·0.5·x, so x = 1.9, 1.805.
  auto decay = SGD{.weight_decay = 0.5}.state(1);
  std::vector<float> x = {2.0f}, zero = {0.0f};
  decay.apply(x, zero, 0.1);
  CHECK(x[0] == Approx(1.9).margin(1e-6));
  decay.apply(x, zero, 0.1);
  CHECK(x[0] == Approx(1.805).margin(1e-6));
}

TEST_CASE("SGD-family trajectories match PyTorch's SGD formulas in double", "[parameters][local]") {
  check_close(run(SGD{}), reference_sgd(0.0, false, 0.0), 1e-5);
  check_close(run(SGD{.weight_decay = 0.1}), reference_sgd(0.0, false, 0.1), 1e-5);
  check_close(run(HeavyBall{.momentum = 0.9}), reference_sgd(0.9, false, 0.0), 1e-5);
  check_close(run(HeavyBall{.momentum = 0.8, .weight_decay = 0.05}), reference_sgd(0.8, false, 0.05), 1e-5);
  check_close(run(Nesterov{.momentum = 0.9}), reference_sgd(0.9, true, 0.0), 1e-5);
  check_close(run(Nesterov{.momentum = 0.7, .weight_decay = 0.2}), reference_sgd(0.7, true, 0.2), 1e-5);
}

TEST_CASE("SGD and heavy ball are bit for bit the optimizer's float loops", "[parameters][local]") {
  // x −= η g and m = μm + g; x −= η m, in float with η and μ rounded to float first: the steps
  // DecentralizedOptimizer::run_local_steps takes, so wiring these policies in changes no bits.
  const float eta = static_cast<float>(0.05), mu = static_cast<float>(0.9);
  std::vector<float> x = kStart, y = kStart, m(kStart.size(), 0.0f), z = kStart;
  auto sgd = SGD{}.state(x.size());
  auto heavy = HeavyBall{.momentum = 0.9}.state(x.size());
  for (int t = 0; t < 5; ++t) {
    const auto g = gradient_at(x);
    sgd.apply(x, g, 0.05);
    const auto gy = gradient_at(y);
    for (std::size_t k = 0; k < y.size(); ++k) y[k] -= eta * gy[k];
    const auto gz = gradient_at(z);
    std::vector<float> w = z;
    heavy.apply(z, gz, 0.05);
    for (std::size_t k = 0; k < w.size(); ++k) {
      m[k] = mu * m[k] + gz[k];
      w[k] -= eta * m[k];
    }
    CHECK(bits(w) == bits(z));
  }
  CHECK(bits(x) == bits(y));
}

TEST_CASE("Adam and AdamW match PyTorch's formulas in double", "[parameters][local]") {
  check_close(run(Adam{}), reference_adam(0.9, 0.999, 1e-8, 0.0, false), 2e-6);
  check_close(run(Adam{.beta1 = 0.8, .beta2 = 0.99, .eps = 1e-3, .weight_decay = 0.1}),
              reference_adam(0.8, 0.99, 1e-3, 0.1, false), 2e-6);
  check_close(run(AdamW{}), reference_adam(0.9, 0.999, 1e-8, 0.01, true), 2e-6);
  check_close(run(AdamW{.beta1 = 0.5, .beta2 = 0.9, .eps = 1e-6, .weight_decay = 0.3}),
              reference_adam(0.5, 0.9, 1e-6, 0.3, true), 2e-6);
  // Coupled and decoupled decay differ (the reference is not blind to the distinction).
  const auto coupled = reference_adam(0.9, 0.999, 1e-8, 0.3, false);
  const auto decoupled = reference_adam(0.9, 0.999, 1e-8, 0.3, true);
  CHECK(std::abs(coupled[3] - decoupled[3]) > 1e-3);

  // Adam's first step moves every coordinate by η·sign(g) (m̂ / √v̂ = g / |g|), whatever |g|.
  auto state = Adam{}.state(3);
  std::vector<float> x = {0.0f, 0.0f, 0.0f};
  const std::vector<float> g = {1e-3f, -50.0f, 2.0f};
  state.apply(x, g, 0.01);
  CHECK(x[0] == Approx(-0.01).margin(1e-7));
  CHECK(x[1] == Approx(0.01).margin(1e-7));
  CHECK(x[2] == Approx(-0.01).margin(1e-7));
  CHECK(state.steps() == 1);
}

TEMPLATE_TEST_CASE("save and load continue a run bit for bit", "[parameters][local]", SGD, HeavyBall,
                   Nesterov, Adam, AdamW) {
  TestType policy{};
  if constexpr (requires { policy.momentum; }) policy.momentum = 0.75;
  if constexpr (requires { policy.beta2; }) policy.beta2 = 0.95;
  policy.weight_decay = 0.02;
  auto original = policy.state(kStart.size());
  std::vector<float> x = kStart;
  for (int t = 0; t < 3; ++t) original.apply(x, gradient_at(x), 0.05);
  const std::vector<std::byte> bytes = saved<TestType>(original);

  // Another run with other hyperparameters: loading restores the saved ones with the buffers.
  auto restored = TestType{}.state(kStart.size());
  ByteReader in(bytes);
  restored.load(in);
  CHECK(in.remaining() == 0);
  CHECK(saved<TestType>(restored) == bytes);
  CHECK(restored.hyperparameters().weight_decay == 0.02);

  std::vector<float> y = x;
  for (int t = 0; t < 4; ++t) {
    original.apply(x, gradient_at(x), 0.03);
    restored.apply(y, gradient_at(y), 0.03);
  }
  CHECK(bits(x) == bits(y));
  CHECK(saved<TestType>(original) == saved<TestType>(restored));

  SECTION("every truncation is a DecodeError and changes nothing") {
    auto target = TestType{}.state(kStart.size());
    const auto untouched = saved<TestType>(target);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      ByteReader cut(std::span<const std::byte>(bytes).first(n));
      CHECK_THROWS_AS(target.load(cut), DecodeError);
    }
    CHECK(saved<TestType>(target) == untouched);
  }
  SECTION("another dimension is a ConfigError") {
    auto wider = policy.state(kStart.size() + 1);
    ByteReader again(bytes);
    CHECK_THROWS_AS(wider.load(again), ConfigError);
    ByteReader once_more(bytes);
    CHECK_THROWS_WITH(wider.load(once_more), Contains("6"));
  }
}

TEST_CASE("a checkpoint of another policy or with bad contents is refused", "[parameters][local]") {
  auto adam = Adam{}.state(2);
  std::vector<float> x = {1.0f, 2.0f};
  adam.apply(x, std::vector<float>{0.5f, -0.5f}, 0.1);
  const auto adam_bytes = saved<Adam>(adam);
  auto adamw = AdamW{}.state(2);
  ByteReader in(adam_bytes);
  CHECK_THROWS_WITH(adamw.load(in), Contains("local update 'adam', this optimizer uses 'adamw'"));
  auto sgd = SGD{}.state(2);
  ByteReader in2(adam_bytes);
  CHECK_THROWS_AS(sgd.load(in2), ConfigError);

  auto adam_record = [](double beta1, std::int64_t t, float m0, float v0) {
    std::vector<std::byte> out;
    checkpoint::put_string(out, "adam");
    for (double h : {beta1, 0.999, 1e-8, 0.0}) put_le<double>(out, h);
    put_le<std::int64_t>(out, t);
    checkpoint::put_floats(out, std::vector<float>{m0, 0.0f});
    checkpoint::put_floats(out, std::vector<float>{v0, 0.0f});
    return out;
  };
  auto load = [](const std::vector<std::byte>& bytes) {
    auto state = Adam{}.state(2);
    ByteReader reader(bytes);
    state.load(reader);
    return state.steps();
  };
  CHECK(load(adam_record(0.9, 4, 0.5f, 0.25f)) == 4);
  CHECK_THROWS_WITH(load(adam_record(1.5, 4, 0.5f, 0.25f)), Contains("beta1"));
  CHECK_THROWS_WITH(load(adam_record(0.9, -1, 0.5f, 0.25f)), Contains("step count is negative"));
  CHECK_THROWS_AS(load(adam_record(0.9, 4, std::numeric_limits<float>::quiet_NaN(), 0.25f)), DecodeError);
  CHECK_THROWS_AS(load(adam_record(0.9, 4, 0.5f, std::numeric_limits<float>::infinity())), DecodeError);
  CHECK_THROWS_WITH(load(adam_record(0.9, 4, 0.5f, -0.25f)), Contains("second moment is negative"));

  std::vector<std::byte> momentum;
  checkpoint::put_string(momentum, "heavy-ball");
  put_le<double>(momentum, 0.9);
  put_le<double>(momentum, 0.0);
  checkpoint::put_floats(momentum, std::vector<float>{std::numeric_limits<float>::infinity(), 0.0f});
  auto heavy = HeavyBall{}.state(2);
  ByteReader in3(momentum);
  CHECK_THROWS_WITH(heavy.load(in3), Contains("momentum buffer holds non-finite values"));
}

TEST_CASE("bad hyperparameters, sizes and rates are refused with ConfigError", "[parameters][local]") {
  CHECK_THROWS_WITH(SGD{.weight_decay = -1}.validate(), Contains("SGD: weight_decay"));
  CHECK_THROWS_AS(SGD{.weight_decay = kNaN}.state(3), ConfigError);
  for (double mu : {1.0, -0.1, kNaN, kInf}) {
    CHECK_THROWS_WITH(HeavyBall{.momentum = mu}.state(3), Contains("HeavyBall: momentum must be in [0, 1)"));
    CHECK_THROWS_WITH(Nesterov{.momentum = mu}.validate(), Contains("Nesterov: momentum"));
  }
  CHECK_THROWS_WITH((Nesterov{.momentum = 0.5, .weight_decay = kInf}.validate()), Contains("weight_decay"));
  CHECK_THROWS_WITH(Adam{.beta1 = 1.0}.validate(), Contains("Adam: beta1 must be in [0, 1)"));
  CHECK_THROWS_WITH(Adam{.beta2 = kNaN}.state(2), Contains("beta2"));
  CHECK_THROWS_WITH(AdamW{.eps = 0.0}.validate(), Contains("AdamW: eps must be finite and > 0"));
  CHECK_THROWS_WITH(AdamW{.eps = kInf}.validate(), Contains("eps"));
  CHECK_THROWS_WITH(AdamW{.weight_decay = -0.01}.validate(), Contains("AdamW: weight_decay"));
  CHECK_NOTHROW(HeavyBall{.momentum = 0.0}.validate());
  CHECK_NOTHROW(Adam{.beta1 = 0.0, .beta2 = 0.0}.validate());

  auto state = Adam{}.state(3);
  std::vector<float> x(3), g(3), short_g(2);
  CHECK_THROWS_WITH(state.apply(x, short_g, 0.1), Contains("state is for 3 floats, got x of 3 and g of 2"));
  CHECK_THROWS_WITH(state.apply(x, g, -0.1), Contains("Adam: lr"));
  CHECK_THROWS_AS(state.apply(x, g, kNaN), ConfigError);
  CHECK(state.steps() == 0);  // a refused step is not counted
  CHECK_NOTHROW(state.apply(x, g, 0.0));
}

TEST_CASE("a step allocates nothing", "[parameters][local]") {
  const std::size_t d = 4096;
  std::vector<float> x(d, 0.5f), g(d, 0.25f);
  auto sgd = SGD{.weight_decay = 0.1}.state(d);
  auto heavy = HeavyBall{}.state(d);
  auto nesterov = Nesterov{}.state(d);
  auto adam = Adam{}.state(d);
  auto adamw = AdamW{}.state(d);
  const long before = allocations.load();
  for (int t = 0; t < 10; ++t) {
    sgd.apply(x, g, 0.01);
    heavy.apply(x, g, 0.01);
    nesterov.apply(x, g, 0.01);
    adam.apply(x, g, 0.01);
    adamw.apply(x, g, 0.01);
  }
  const long after_steps = allocations.load();
  CHECK(after_steps == before);
  std::vector<float> probe(3);  // the counter does see allocations
  const long after_probe = allocations.load();
  CHECK(after_probe > after_steps);
}
