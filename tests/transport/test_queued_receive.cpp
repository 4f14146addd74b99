// Queued receive (decopt/transport/queued_receive.hpp): post_queued files a copy per neighbour in
// round order; try_receive takes only what has arrived (SimulatedNetwork: by the receiver's
// virtual clock; ThreadNetwork: once posted) and never waits; ThreadNetwork's receive waits and
// times out naming the rank and the neighbour; queued counts what is not yet taken.
#include <catch2/catch.hpp>

#include <decopt/decopt.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

using namespace decopt;

namespace {
std::vector<std::byte> bytes_of(int value, std::size_t size) { return std::vector<std::byte>(size, std::byte(value)); }
}  // namespace

TEST_CASE("SimulatedNetwork: queued messages arrive by the receiver's virtual clock, in round order", "[transport][queued]") {
  LinkModel link;
  link.latency_seconds = 0.5;
  SimulatedNetwork network(Topology::ring(3), link);
  auto& zero = network.endpoint(0);
  auto& one = network.endpoint(1);
  const std::size_t from_zero = 0;  // node 1's neighbours are 0 and 2, in that order
  REQUIRE(one.neighbor_ranks() == std::vector<int>{0, 2});
  {
    const auto first = bytes_of(1, 5), second = bytes_of(2, 7);
    zero.post_queued(0, first);
    zero.advance(1.0);
    zero.post_queued(1, second);
  }  // the network keeps its own copies
  CHECK(one.queued(from_zero) == 2);
  CHECK(one.next_arrival(from_zero) == Approx(0.5));
  CHECK_FALSE(one.try_receive(from_zero).has_value());  // node 1's clock is 0
  one.advance(0.5);
  auto m = one.try_receive(from_zero);
  REQUIRE(m.has_value());
  CHECK(m->round == 0);
  CHECK(m->bytes.size() == 5);
  CHECK(m->bytes[0] == std::byte(1));
  CHECK_FALSE(one.try_receive(from_zero).has_value());  // round 1 arrives at 1.5
  CHECK(one.next_arrival(from_zero) == Approx(1.5));
  one.advance(1.0);
  m = one.try_receive(from_zero);
  REQUIRE(m.has_value());
  CHECK(m->round == 1);
  CHECK(m->bytes.size() == 7);
  CHECK(one.queued(from_zero) == 0);
  CHECK_FALSE(one.next_arrival(from_zero).has_value());
  const auto two = network.endpoint(2).neighbor_ranks();  // node 2 got its own copies
  const auto zero_at_two = static_cast<std::size_t>(std::find(two.begin(), two.end(), 0) - two.begin());
  CHECK(network.endpoint(2).queued(zero_at_two) == 2);
  CHECK_THROWS_AS(one.try_receive(2), ConfigError);
  QueuedTransportRef ref(one);
  CHECK_FALSE(ref.can_wait());
  CHECK_THROWS_WITH(ref.receive(0), Catch::Contains("cannot wait"));
}

TEST_CASE("ThreadNetwork: queued messages are taken as they arrive; receive waits and times out naming the neighbour",
          "[transport][queued]") {
  ThreadNetwork network(Topology::ring(3), {}, std::chrono::milliseconds(50));
  auto& zero = network.endpoint(0);
  auto& one = network.endpoint(1);
  CHECK_FALSE(one.try_receive(0).has_value());
  zero.post_queued(4, bytes_of(9, 3));
  zero.post_queued(5, bytes_of(8, 2));
  CHECK(one.queued(0) == 2);
  const auto first = one.try_receive(0);
  REQUIRE(first.has_value());
  CHECK(first->round == 4);
  CHECK(first->bytes[0] == std::byte(9));
  const auto second = one.receive(0);
  CHECK(second.round == 5);
  CHECK(second.bytes.size() == 2);
  CHECK(one.queued(0) == 0);
  CHECK_THROWS_WITH(one.receive(1), Catch::Contains("node 1 timed out") && Catch::Contains("neighbour 2"));
  CHECK_THROWS_AS(one.receive(7), ConfigError);
  network.abort("test");
  CHECK_THROWS_AS(one.try_receive(0), NetworkAborted);
  QueuedTransportRef ref(zero);
  CHECK(ref.can_wait());
  CHECK(ref.neighbor_ranks() == std::vector<int>{1, 2});
}
