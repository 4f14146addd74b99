// libFuzzer target: arbitrary bytes into DecentralizedOptimizer::load_state. A damaged or foreign
// state must be refused (DecodeError / ConfigError) and leave the optimizer as it was; an accepted
// one must hold finite values.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include <decopt/decopt.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const decopt::Topology topology = decopt::Topology::ring(4);
  decopt::SimulatedNetwork network(topology);
  std::vector<float> x(64, 1.0f);
  decopt::Options options;
  options.momentum = 0.5;
  decopt::MalcomPSGD<> node(std::span<float>(x), topology, network.endpoint(1), options);
  try {
    node.load_state(std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size));
  } catch (const decopt::DecodeError&) {
  } catch (const decopt::ConfigError&) {
  }
  for (float v : x)
    if (!std::isfinite(v)) std::abort();
  for (float v : node.public_copy())
    if (!std::isfinite(v)) std::abort();
  return 0;
}
