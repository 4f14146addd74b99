// decopt/torch.hpp: a torch::nn::Module bound zero-copy to decopt's flat buffers.
// LibTorch first: without glog, c10's logging defines a CHECK macro of its own (a no-op in release
// builds) that would silently replace Catch's; undefine it before Catch defines the real one.
#include <decopt/torch.hpp>
#undef CHECK
#include <catch2/catch.hpp>
#include <decopt/decopt.hpp>

#include <cstring>
#include <vector>

namespace {

/// Conv → linear, with biases: the shapes of a small CNN.
struct TinyNet : torch::nn::Module {
  TinyNet() {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 3, 3)));
    fc = register_module("fc", torch::nn::Linear(3 * 4 * 4, 5));
  }
  torch::Tensor forward(torch::Tensor x) { return fc(torch::relu(conv(x)).flatten(1)); }
  torch::nn::Conv2d conv{nullptr};
  torch::nn::Linear fc{nullptr};
};

const float* slice_of(decopt::torch::ModuleBinding& binding, std::span<float> buffer, const char* name) {
  return buffer.data() + binding.layout().segment(name).offset;
}

struct Batch {
  torch::Tensor x = torch::randn({6, 1, 6, 6});
  torch::Tensor y = torch::randint(0, 5, {6});
};

}  // namespace

TEST_CASE("bind(): parameters alias the flat buffer and keep their values; the layout follows named_parameters()",
          "[torch]") {
  torch::manual_seed(1);
  TinyNet net;
  std::vector<torch::Tensor> before;
  for (const auto& p : net.parameters()) before.push_back(p.detach().clone());
  auto binding = decopt::torch::bind(net);

  const auto segments = binding.layout().segments();
  REQUIRE(segments.size() == 4);
  CHECK(segments[0].name == "conv.weight");
  CHECK((segments[0].shape == std::vector<std::int64_t>{3, 1, 3, 3}));
  CHECK(segments[0].options.prox);
  CHECK_FALSE(segments[1].options.prox);  // conv.bias: no ℓ1 on biases
  CHECK(segments[2].options.prox);        // fc.weight
  CHECK_FALSE(segments[3].options.prox);  // fc.bias
  const auto params = net.parameters();
  for (std::size_t k = 0; k < params.size(); ++k) {
    CHECK(params[k].data_ptr<float>() == binding.parameters().data() + segments[k].offset);  // pointer identity
    CHECK(torch::equal(params[k].detach(), before[k]));
    CHECK(params[k].requires_grad());
    CHECK(params[k].is_leaf());
  }
  CHECK(binding.layout().padding_is_zero(binding.parameters()));
}

TEST_CASE("bind(): backward lands in the flat gradient buffer; zero_grad() and a torch optimizer work on it",
          "[torch]") {
  torch::manual_seed(2);
  TinyNet net;
  auto binding = decopt::torch::bind(net);
  Batch batch;
  auto loss = [&] { return torch::nn::functional::cross_entropy(net.forward(batch.x), batch.y); };

  const double value = binding.backward(loss);
  CHECK(std::isfinite(value));
  CHECK(net.fc->weight.grad().data_ptr<float>() == slice_of(binding, binding.gradients(), "fc.weight"));
  // The gradient equals the one of an unbound copy of the same module.
  {
    torch::manual_seed(2);
    TinyNet reference;
    torch::nn::functional::cross_entropy(reference.forward(batch.x), batch.y).backward();
    CHECK(torch::allclose(net.fc->weight.grad(), reference.fc->weight.grad()));
    CHECK(torch::allclose(net.conv->bias.grad(), reference.conv->bias.grad()));
  }
  float norm = 0;
  for (float g : binding.gradients()) norm += g * g;
  CHECK(norm > 0);

  torch::optim::Adam adam(net.parameters(), torch::optim::AdamOptions(1e-2));
  adam.zero_grad();  // detach_() + zero_() on our slices: allowed (they are not autograd views)
  for (float g : binding.gradients()) CHECK(g == 0.0f);
  CHECK(net.fc->weight.grad().data_ptr<float>() == slice_of(binding, binding.gradients(), "fc.weight"));

  (void)binding.backward(loss);
  const std::vector<float> x_before(binding.parameters().begin(), binding.parameters().end());
  adam.step();  // steps the memory decopt compresses
  CHECK(std::memcmp(x_before.data(), binding.parameters().data(), x_before.size() * sizeof(float)) != 0);
  CHECK(net.fc->weight.data_ptr<float>() == slice_of(binding, binding.parameters(), "fc.weight"));

  net.zero_grad(/*set_to_none=*/true);  // drops the .grad tensors: the next backward re-binds them
  (void)binding.backward(loss);
  CHECK(net.fc->weight.grad().data_ptr<float>() == slice_of(binding, binding.gradients(), "fc.weight"));
}

TEST_CASE("A bound module trains with decopt's step() and with torch Adam through exchange()", "[torch]") {
  constexpr int kNodes = 4;
  using Malcom = decopt::MalcomPSGD<>;
  const auto topology = decopt::Topology::ring(kNodes);
  torch::manual_seed(3);
  Batch batch;  // one shared, learnable batch: the loss must fall on every node
  for (const bool own_optimizer : {false, true}) {
    std::vector<std::unique_ptr<TinyNet>> nets;
    std::vector<decopt::torch::ModuleBinding> bindings;
    for (int i = 0; i < kNodes; ++i) {
      torch::manual_seed(4);  // the same x⁰ on every node
      nets.push_back(std::make_unique<TinyNet>());
      bindings.push_back(decopt::torch::bind(*nets.back()));
    }
    decopt::SimulatedNetwork network(topology);
    decopt::Options options{.lr = 0.1, .consensus_step = 0.5, .seed = 1};
    options.prox_step = options.lr;
    std::vector<Malcom> nodes;
    std::vector<std::unique_ptr<torch::optim::Adam>> adams;
    for (int i = 0; i < kNodes; ++i) {
      nodes.emplace_back(bindings[i].parameters(), topology, network.endpoint(i), options,
                         Malcom::Compressor({}, decopt::DitheredQuantizer{256, decopt::Norm::L2}, {}), decopt::L1Prox{1e-5});
      adams.push_back(std::make_unique<torch::optim::Adam>(nets[i]->parameters(), torch::optim::AdamOptions(1e-2)));
    }
    auto loss_of = [&](int i) { return [&, i] { return torch::nn::functional::cross_entropy(nets[i]->forward(batch.x), batch.y); }; };
    const double first = loss_of(0)().item<double>();
    for (int round = 0; round < 40; ++round) {
      for (int i = 0; i < kNodes; ++i) {
        if (own_optimizer) {
          adams[i]->zero_grad();
          loss_of(i)().backward();
          adams[i]->step();
          nodes[i].post_exchange();
        } else {
          nodes[i].begin_round(bindings[i].gradient(loss_of(i)));
        }
      }
      for (auto& node : nodes) (void)node.finish_round();
    }
    INFO((own_optimizer ? "torch Adam + exchange()" : "decopt step()"));
    for (int i = 0; i < kNodes; ++i) CHECK(loss_of(i)().item<double>() < 0.5 * first);
  }
}

TEST_CASE("The gradient callback refuses an optimizer built over another buffer", "[torch]") {
  TinyNet net;
  auto binding = decopt::torch::bind(net);
  Batch batch;
  auto callback = binding.gradient([&] { return torch::nn::functional::cross_entropy(net.forward(batch.x), batch.y); });
  std::vector<float> other(binding.parameters().size()), g(binding.parameters().size());
  CHECK_THROWS_AS(callback(std::span<const float>(other), std::span<float>(g)), decopt::ConfigError);
}
