// decopt's share of a node-round of decopt-torch-train's CNN (examples/torch/cnn.hpp, 27 130
// parameters) beside the LibTorch step it accompanies, on one thread, beside BM_Memcpy:
//   BM_TorchSgdStep          one torch::optim::SGD step: forward + backward + update, batch 32 of
//                            Fashion-MNIST;
//   BM_DecoptExchange/<alg>  decopt's calls of one node-round (post_exchange: compress and post;
//                            finish_exchange: collect, decode, mix, prox), per node, on a 2-node
//                            simulated network whose nodes train with torch SGD between exchanges:
//                            the residuals x − x̂ are those of a model being trained (after 300
//                            warm-up rounds), not constants. Manual time: only decopt's calls count
//                            (CnnNode::decopt_seconds), divided by the 2 nodes.
// Goal (issue 14 §3): decopt's share ≤ 10% of the torch step. Needs the Fashion-MNIST files
// (apt-get install dataset-fashion-mnist); without them the benchmarks report the error.
#include <decopt/torch.hpp>

#include <decopt/decopt.hpp>

#include <memory>
#include <string>
#include <vector>

#include "fashion/idx.hpp"
#include "memcpy_baseline.hpp"
#include "torch/experiment.hpp"
#include "train/experiment.hpp"

namespace {

using namespace decopt::torch_example;

/// Fashion-MNIST, standardised as decopt-torch-train does; loaded once (empty when missing).
const decopt::train::TrainingData* fashion_mnist(benchmark::State& state) {
  static std::unique_ptr<decopt::train::TrainingData> data;
  static std::string error;
  if (!data && error.empty()) {
    try {
      data = std::make_unique<decopt::train::TrainingData>(decopt::train::load_data(decopt::train::TrainConfig{}));
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (!data) state.SkipWithError(error.c_str());
  return data.get();
}

/// decopt-torch-train's settings for a 2-node run with --local torch-sgd.
TorchTrainConfig two_nodes(const std::string& algorithm) {
  TorchTrainConfig c;
  c.train.algorithm = algorithm;
  c.train.nodes = 2;
  c.local = "torch-sgd";
  return c;
}

void BM_TorchSgdStep(benchmark::State& state) {
  ::torch::set_num_threads(1);
  const auto* data = fashion_mnist(state);
  if (!data) return;
  const TorchTrainConfig c = two_nodes("malcom");
  std::vector<int> share(static_cast<std::size_t>(data->train.size()));
  for (int i = 0; i < data->train.size(); ++i) share[static_cast<std::size_t>(i)] = i;
  BoundCnn model(c.train.seed, false);
  ::torch::optim::SGD sgd(model.net->parameters(), ::torch::optim::SGDOptions(c.train.lr));
  decopt::examples::BatchSampler sampler(share, c.train.batch, 1);
  Eigen::MatrixXf x(data->train.features(), c.train.batch);
  std::vector<std::uint8_t> y(static_cast<std::size_t>(c.train.batch));
  for (auto _ : state) {
    sampler.next(data->train, x, y);
    sgd.zero_grad();
    const ::torch::Tensor loss = ::torch::nn::functional::cross_entropy(
        model.net->forward(images(x, data->train.rows, data->train.cols)), labels(y));
    loss.backward();
    sgd.step();
    benchmark::DoNotOptimize(loss.item<float>());
  }
}
BENCHMARK(BM_TorchSgdStep)->Unit(benchmark::kMillisecond);

/// The 2-node run of one algorithm (`parts`: malcom_parts, ...): its CnnNodes, network and optimizers.
template <class Optimizer>
void exchange_benchmark(benchmark::State& state, const TorchTrainConfig& c, decopt::Options options,
                        const decopt::torch_example::detail::Parts<Optimizer>& parts) {
  ::torch::set_num_threads(1);
  const auto* data = fashion_mnist(state);
  if (!data) return;
  const auto topology = decopt::Topology::ring(2);
  const auto shares = decopt::examples::partition(data->train.labels, 2, decopt::examples::Partition::Iid, 1);
  std::vector<std::unique_ptr<CnnNode>> nodes;
  for (int i = 0; i < 2; ++i) nodes.push_back(std::make_unique<CnnNode>(c, data->train, shares[static_cast<std::size_t>(i)], 7 + i));
  decopt::SimulatedNetwork network(topology);
  decopt::torch_example::detail::OptimizersOf<Optimizer> optimizers(topology, options, parts, 2);
  for (int i = 0; i < 2; ++i) optimizers.add(*nodes[static_cast<std::size_t>(i)], network.endpoint(i));
  auto round = [&] { (void)optimizers.lockstep_round(nodes); };
  for (int warm_up = 0; warm_up < 300; ++warm_up) round();
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    const double before = nodes[0]->decopt_seconds() + nodes[1]->decopt_seconds();
    const std::uint64_t sent = optimizers.totals(0).bytes_sent;
    round();
    state.SetIterationTime((nodes[0]->decopt_seconds() + nodes[1]->decopt_seconds() - before) / 2);
    bytes += optimizers.totals(0).bytes_sent - sent;
  }
  state.counters["bits_per_param"] =
      8.0 * static_cast<double>(bytes) / (static_cast<double>(state.iterations()) * static_cast<double>(nodes[0]->parameters().size()));
}

void BM_DecoptExchange_malcom(benchmark::State& state) {
  const TorchTrainConfig c = two_nodes("malcom");
  using Opt = MalcomCnn<decopt::VectorSourceCoder, decopt::SyncStep, decopt::SGD>;
  const typename Opt::Compressor compressor(
      decopt::Compressor<decopt::Dense, decopt::DitheredQuantizer, decopt::VectorSourceCoder>{decopt::Dense{}, quantizer_of(c), {}});
  exchange_benchmark<Opt>(state, c, run_options(c),
                          decopt::torch_example::detail::Parts<Opt>{compressor, decopt::L1Prox{c.train.lambda}, decopt::SGD{}});
}
BENCHMARK(BM_DecoptExchange_malcom)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_DecoptExchange_dpsgd(benchmark::State& state) {
  const TorchTrainConfig c = two_nodes("dpsgd");
  using Opt = DpsgdCnn<decopt::SyncStep, decopt::SGD>;
  exchange_benchmark<Opt>(state, c, decopt::dpsgd_options(run_options(c)),
                          decopt::torch_example::detail::Parts<Opt>{{}, {}, decopt::SGD{}});
}
BENCHMARK(BM_DecoptExchange_dpsgd)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace
