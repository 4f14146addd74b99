// CnnNode's checkpoint record (torch/node.hpp): a torch optimizer's state (Adam's moments and
// step, SGD's momentum buffers) survives save_state → load_state so that the next steps are bit
// for bit those of the node that saved it; a damaged or mismatched record is a DecodeError.
// LibTorch first: c10's CHECK macro must not replace Catch's (tests/torch/test_torch.cpp).
#include <decopt/torch.hpp>
#undef CHECK
#include <catch2/catch.hpp>
#include <decopt/decopt.hpp>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "torch/node.hpp"

namespace {

using decopt::torch_example::CnnNode;
using decopt::torch_example::TorchTrainConfig;

/// 16 random 28 × 28 images with labels 0..9: enough for a few mini-batches of 4.
decopt::examples::Dataset tiny_dataset() {
  decopt::examples::Dataset data;
  data.rows = data.cols = 28;
  data.images = Eigen::MatrixXf::Random(28 * 28, 16);
  for (int i = 0; i < 16; ++i) data.labels.push_back(static_cast<std::uint8_t>(i % 10));
  return data;
}

TorchTrainConfig config_for(const std::string& local) {
  TorchTrainConfig c;
  c.local = local;
  c.train.batch = 4;
  c.train.lr = 1e-2;
  c.train.momentum = local == "torch-sgd" ? 0.9 : 0.0;
  return c;
}

/// Stands in for decopt's optimizer in CnnNode's round: a torch optimizer's round only posts and finishes.
struct NoExchange {
  struct Result {
    double loss = 0;
  };
  void post_exchange() {}
  Result finish_round() { return {}; }
  /// decopt's own local step: never taken with a torch optimizer.
  template <class Gradient>
  void begin_round(Gradient&&) {
    throw std::logic_error("begin_round called for a node with a torch optimizer");
  }
};

/// `steps` rounds of the node's torch optimizer.
void train(CnnNode& node, int steps) {
  NoExchange exchange;
  for (int s = 0; s < steps; ++s) {
    node.begin_round(exchange);
    (void)node.finish_round(exchange);
  }
}

std::vector<float> parameters_of(CnnNode& node) { return {node.parameters().begin(), node.parameters().end()}; }

/// A node record as save_state frames it, around an arbitrary torch optimizer state.
std::vector<std::byte> forged_record(const std::string& torch_state) {
  std::vector<std::byte> out;
  const std::size_t start = decopt::checkpoint::begin_record(out);
  decopt::put_le<double>(out, 0.0);
  decopt::checkpoint::put_string(out, torch_state);
  decopt::checkpoint::end_record(out, start);
  return out;
}

/// The torch optimizer state inside a record written by save_state.
std::string torch_state_in(const std::vector<std::byte>& record) {
  std::size_t used = 0;
  decopt::ByteReader in(decopt::checkpoint::open_record(record, used));
  (void)in.get_le<double>();
  return decopt::checkpoint::get_string(in);
}

}  // namespace

TEST_CASE("a resumed torch optimizer continues bit for bit", "[torch_example]") {
  const auto data = tiny_dataset();
  const std::string local = GENERATE(std::string("torch-adam"), std::string("torch-sgd"));
  const TorchTrainConfig c = config_for(local);
  const std::vector<int> share{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  CnnNode original(c, data, share, 7);
  train(original, 3);
  std::vector<std::byte> record;
  original.save_state(record);
  REQUIRE_FALSE(torch_state_in(record).empty());

  // A fresh node with the model and batch position of the original (the run's other records):
  // with the torch state loaded, its next steps are the original's, bit for bit.
  CnnNode resumed(c, data, share, 7);
  const auto x = parameters_of(original);
  std::copy(x.begin(), x.end(), resumed.parameters().begin());
  resumed.sampler().seek(original.sampler().epoch(), original.sampler().position());
  CHECK(resumed.load_state(record) == record.size());

  // Without it (moments and step from zero), the same steps give other parameters: the test sees
  // a state that is not restored.
  CnnNode fresh(c, data, share, 7);
  std::copy(x.begin(), x.end(), fresh.parameters().begin());
  fresh.sampler().seek(original.sampler().epoch(), original.sampler().position());

  train(original, 2);
  train(resumed, 2);
  train(fresh, 2);
  const auto after = parameters_of(original);
  const auto resumed_after = parameters_of(resumed);
  CHECK(std::memcmp(after.data(), resumed_after.data(), after.size() * sizeof(float)) == 0);
  CHECK(parameters_of(fresh) != after);
}

TEST_CASE("a damaged torch optimizer state is a DecodeError, never a crash", "[torch_example]") {
  const auto data = tiny_dataset();
  const TorchTrainConfig c = config_for("torch-adam");
  const std::vector<int> share{0, 1, 2, 3, 4, 5, 6, 7};
  CnnNode node(c, data, share, 7);
  train(node, 1);
  std::vector<std::byte> record;
  node.save_state(record);
  const std::string state = torch_state_in(record);

  CnnNode target(c, data, share, 7);
  SECTION("not an archive") {
    CHECK_THROWS_WITH(target.load_state(forged_record("not a torch archive")),
                      Catch::Contains("torch optimizer state is malformed"));
  }
  SECTION("an archive cut in half") {
    CHECK_THROWS_AS(target.load_state(forged_record(state.substr(0, state.size() / 2))), decopt::DecodeError);
  }
  SECTION("bytes flipped inside the archive") {
    std::string damaged = state;
    for (std::size_t k = damaged.size() / 3; k < damaged.size() / 3 + 64 && k < damaged.size(); ++k) damaged[k] = '\x5a';
    try {
      (void)target.load_state(forged_record(damaged));  // a flip in padding may load: then it must load cleanly
    } catch (const decopt::DecodeError&) {
    }
  }
  SECTION("no state for a torch optimizer") {
    CHECK_THROWS_WITH(target.load_state(forged_record("")), Catch::Contains("no torch optimizer state"));
  }
  SECTION("a state for a node without a torch optimizer") {
    CnnNode plain(config_for("sgd"), data, share, 7);
    CHECK_THROWS_WITH(plain.load_state(record), Catch::Contains("does not use"));
  }
  SECTION("the record's frame damaged") {
    std::vector<std::byte> damaged = record;
    damaged[damaged.size() / 2] ^= std::byte{0x01};
    CHECK_THROWS_AS(target.load_state(damaged), decopt::DecodeError);
  }
}
