// Compiled against the INSTALLED decopt with -march=native -Wall -Wextra -Werror (CMakeLists.txt):
// the umbrella header, the main pipelines and the Eigen-based parts (spectral gaps, DP-PSAC
// private gradients, the compositional solvers) instantiated and run, so what a training program
// uses is really compiled, with this machine's SIMD paths, and must not warn.
#include <decopt/decopt.hpp>

#include <cmath>
#include <cstdio>
#include <span>
#include <vector>

namespace {

/// A few threaded Simulation rounds of Opt on a ring of 4 nodes with d = 5000, through a
/// resynchronisation; returns the consensus distance. (Every SIMD path is compiled whatever d.)
template <class Opt>
double train(typename Opt::Compressor compressor, typename Opt::Prox prox = {}) {
  const int n = 4;
  const std::size_t d = 5000;
  std::vector<std::vector<float>> models(n, std::vector<float>(d, 0.0f));
  std::vector<std::span<float>> spans(models.begin(), models.end());
  decopt::Options options;
  options.lr = 0.05;
  if constexpr (!requires { Opt::Compressor::mixes_exactly; }) options.consensus_step = 0.5;  // D-PSGD: γ = 1
  options.resync_every = 3;
  decopt::Simulation<Opt> sim(decopt::Topology::ring(n), spans, options, compressor, prox,
                              decopt::LinkModel{}, 2);
  for (int t = 0; t < 5; ++t)
    sim.round([](int i, std::span<const float> x, std::span<float> g) {
      for (std::size_t k = 0; k < x.size(); ++k)
        g[k] = x[k] - std::sin(0.01f * static_cast<float>(k * 3 + static_cast<std::size_t>(i)));
    });
  return sim.consensus_distance();
}

/// Every Eigen-based part once; returns false when one gives a non-finite or absurd result.
bool eigen_based_parts_work() {
  using namespace decopt;
  // The spectral gap by the dense eigensolver (n ≤ kExactSpectrumMaxNodes) and by Lanczos.
  const double exact_gap = Topology::torus(4, 4).spectral_gap();
  const double lanczos_gap = Topology::ring(spectral::kExactSpectrumMaxNodes + 1).spectral_gap();
  const double matrix_gap = Topology::from_matrix(Topology::complete(5).matrix()).spectral_gap();
  // A DP-PSAC private gradient of 8 per-sample gradients, and its privacy cost.
  Rng rng(3);
  std::vector<float> samples(300 * 8);
  rng.fill_normal(std::span<float>(samples), 1.0);
  std::vector<float> gradient(300);
  privacy::private_gradient(Eigen::Map<const Eigen::MatrixXf>(samples.data(), 300, 8),
                            privacy::PsacClipping(1.0), 1.1, rng, gradient);
  privacy::RdpAccountant accountant;
  accountant.step(1.1, 0.01, 100);
  // The compositional solvers on a small mean–variance portfolio problem.
  compositional::PortfolioOptions portfolio;
  portfolio.assets = 12;
  portfolio.periods = 60;
  const compositional::PortfolioProblem problem(portfolio);
  compositional::VrscOptions vrsc;
  vrsc.epochs = 3;
  vrsc.inner_steps = 50;
  compositional::Vector x = compositional::Vector::Zero(problem.dimension());
  const auto serial = compositional::VRSC(vrsc).optimize(problem, x);
  compositional::AsyVrscSharedOptions shared;
  static_cast<compositional::VrscOptions&>(shared) = vrsc;
  shared.threads = 2;
  x.setZero();
  const auto threaded = compositional::AsyVRSCShared(shared).optimize(problem, x);
  return exact_gap > 0 && lanczos_gap > 0 && matrix_gap > 0 && std::isfinite(gradient[0]) &&
         std::isfinite(accountant.epsilon(1e-5)) && std::isfinite(serial.objective) &&
         std::isfinite(threaded.objective);
}

}  // namespace

int main() {
  using namespace decopt;
  using Malcom = MalcomPSGD<>;
  using MalcomOverlap = MalcomPSGD<OverlappedStep>;
  using Choco = ChocoSGD<>;
  using TopKChoco = DecentralizedOptimizer<Compressor<TopK, DitheredQuantizer, EliasCoder>>;
  using TopKExact = DecentralizedOptimizer<Compressor<TopK, Identity, RawCoder>>;
  using SignEF = DecentralizedOptimizer<Compressor<Dense, Sign, VectorSourceCoder>>;
  using SignTopK = DecentralizedOptimizer<Compressor<TopK, Sign, EliasCoder>>;
  using RandTopKVsc = DecentralizedOptimizer<Compressor<RandTopK, DitheredQuantizer, VectorSourceCoder>>;
  using RandomKRaw = DecentralizedOptimizer<Compressor<RandomK, Identity, RawCoder>>;
  const double distances[] = {
      train<Malcom>(Malcom::Compressor({}, DitheredQuantizer{8, Norm::L2}, {}), L1Prox{1e-4}),
      train<Malcom>(Malcom::Compressor({}, DitheredQuantizer{100, Norm::Linf, true}, {}), L1Prox{1e-4}),
      train<MalcomOverlap>(MalcomOverlap::Compressor({}, DitheredQuantizer{4, Norm::Linf}, {}), L1Prox{1e-4}),
      train<Choco>(Choco::Compressor({}, DitheredQuantizer{16, Norm::L2}, {})),
      train<DPSGD<>>({}),
      train<TopKChoco>(TopKChoco::Compressor(TopK{0.1}, DitheredQuantizer{8, Norm::Linf}, {})),
      train<TopKExact>(TopKExact::Compressor(TopK{0.05}, {}, {})),
      train<SignEF>({}),
      train<SignTopK>(SignTopK::Compressor(TopK{0.1}, {}, {})),
      train<RandTopKVsc>(RandTopKVsc::Compressor(RandTopK{0.05, 4.0}, DitheredQuantizer{8, Norm::L2}, {})),
      train<RandomKRaw>(RandomKRaw::Compressor(RandomK{0.2, true}, {}, {})),
  };
  for (double distance : distances)
    if (!std::isfinite(distance)) {
      std::puts("decopt strict consumer: a pipeline produced a non-finite model");
      return 1;
    }
  if (!eigen_based_parts_work()) {
    std::puts("decopt strict consumer: an Eigen-based part gave a non-finite result");
    return 1;
  }
  std::puts("decopt strict consumer OK");
  return 0;
}
