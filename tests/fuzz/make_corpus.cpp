// Writes the seed corpus of the fuzz targets: valid messages of every pipeline and dimension
// (prefixed with the selector byte fuzz_decode reads), and valid optimizer checkpoints.
//   make_corpus <decode-dir> <checkpoint-dir>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "pipelines.hpp"

namespace {
void write(const std::string& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_corpus <decode-dir> <checkpoint-dir>\n");
    return 2;
  }
  decopt::Rng rng(2024);
  constexpr int kAll = decopt::fuzz::kPipelines + decopt::fuzz::kTopLevel;  // fuzz_decode's selector
  for (int p = 0; p < decopt::fuzz::kPipelines; ++p)
    for (int di = 0; di < 3; ++di) {
      const std::size_t d = decopt::fuzz::kDimensions[di];
      std::vector<float> v(d), q(d);
      rng.fill_normal(std::span<float>(v), 1.0);
      std::vector<std::byte> message{static_cast<std::byte>(p + kAll * di)};
      decopt::fuzz::with_pipeline(p, [&](auto compressor) { compressor.encode(v, rng, message, q); });
      write(std::string(argv[1]) + "/p" + std::to_string(p) + "_d" + std::to_string(d), message);
    }
  for (int t = 0; t < decopt::fuzz::kTopLevel; ++t)
    for (int di = 0; di < 3; ++di) {
      const std::size_t d = decopt::fuzz::kDimensions[di];
      std::vector<float> v(d), q(d);
      rng.fill_normal(std::span<float>(v), 1.0);
      const int selector = decopt::fuzz::kPipelines + t;
      std::vector<std::byte> message{static_cast<std::byte>(selector + kAll * di)};
      decopt::fuzz::with_top_level(t, d, [&](auto compressor) { compressor.encode(v, rng, message, q); });
      write(std::string(argv[1]) + "/t" + std::to_string(t) + "_d" + std::to_string(d), message);
    }
  const auto topology = decopt::Topology::ring(4);
  decopt::SimulatedNetwork network(topology);
  std::vector<std::vector<float>> models(4, std::vector<float>(64, 0.0f));
  std::vector<std::span<float>> spans(models.begin(), models.end());
  decopt::Options options;
  options.momentum = 0.5;
  decopt::Simulation<decopt::MalcomPSGD<>> sim(topology, spans, options);
  for (int t = 0; t < 3; ++t) {
    sim.round([](int i, std::span<const float> x, std::span<float> g) {
      for (std::size_t k = 0; k < x.size(); ++k) g[k] = x[k] - static_cast<float>(i);
    });
    std::vector<std::byte> state;
    sim.node(1).save_state(state);
    write(std::string(argv[2]) + "/state_round" + std::to_string(t + 1), state);
  }
  return 0;
}
