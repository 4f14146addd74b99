// The README's usage example, compiled and run by ctest: 8 nodes on a ring, each with its own
// least-squares data, train one model with Malcom-PSGD over the users' own Eigen buffers.
#include <decopt/decopt.hpp>

#include <cstdio>
#include <vector>

int main() {
  const int dim = 50, nodes = 8;
  // Each node's private data: A_i x ≈ b_i with a shared ground truth.
  decopt::Rng data_rng(42);
  Eigen::VectorXf truth = Eigen::VectorXf::Zero(dim);
  for (int k = 0; k < dim; k += 5) truth[k] = 1.0f;
  std::vector<Eigen::MatrixXf> A(nodes, Eigen::MatrixXf(100, dim));
  std::vector<Eigen::VectorXf> b(nodes);
  for (int i = 0; i < nodes; ++i) {
    for (Eigen::Index k = 0; k < A[i].size(); ++k) A[i].data()[k] = static_cast<float>(data_rng.normal());
    b[i] = A[i] * truth;
  }

  // --- the README snippet ---
  const auto topology = decopt::Topology::ring(nodes);
  std::vector<Eigen::VectorXf> models(nodes, Eigen::VectorXf::Zero(dim));  // same x⁰ on every node
  std::vector<std::span<float>> buffers;
  for (auto& m : models) buffers.emplace_back(m.data(), m.size());

  using Malcom = decopt::MalcomPSGD<>;  // Dense + dithered quantizer + vector source coding + ℓ1 prox
  decopt::Options options{.lr = 0.05, .consensus_step = 0.5, .seed = 1};
  decopt::Simulation<Malcom> network(topology, buffers, options,
                                     Malcom::Compressor({}, decopt::DitheredQuantizer{256, decopt::Norm::L2}, {}),
                                     decopt::L1Prox{1e-3});

  for (int round = 0; round < 500; ++round)
    network.round([&](int node, std::span<const float> x, std::span<float> grad) {
      Eigen::Map<const Eigen::VectorXf> xm(x.data(), dim);
      Eigen::Map<Eigen::VectorXf> g(grad.data(), dim);
      const Eigen::VectorXf residual = A[node] * xm - b[node];  // your model, this node's data
      g = A[node].transpose() * residual / 100.0f;
      return 0.5 * residual.squaredNorm() / 100.0;
    });
  // --- end of snippet ---

  const double error = (models[0] - truth).norm() / truth.norm();
  std::printf("after 500 rounds: node 0 is %.2e from the truth (relative), consensus distance %.2e, %.1f kB sent\n",
              error, network.consensus_distance(), static_cast<double>(network.total_bytes_sent()) / 1e3);
  return error < 0.05 ? 0 : 1;
}
