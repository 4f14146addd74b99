// Must NOT compile: Malcom-PSGD's default compressor (SupportCoded) over a scheduled step, whose
// per-edge copies do not fit SupportCoded's per-neighbour support (use ScheduledMalcomPSGD, the
// plain pipeline). The ctest test compile_fail_scheduled_support_coded checks that the compiler says why.
#include <decopt/decopt.hpp>

#include <vector>

int main() {
  const auto schedule = decopt::TopologySchedule::one_peer_exponential(4);
  decopt::SimulatedNetwork network(schedule.transport_graph());
  std::vector<float> x(8, 0.0f);
  decopt::MalcomPSGD<decopt::ScheduledSyncStep> node(std::span<float>(x), schedule, network.endpoint(0));
  return static_cast<int>(node.round());
}
