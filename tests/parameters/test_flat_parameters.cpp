// FlatParameters and FlatView: aligned zeroed buffers, span and Eigen views that alias them
// (row-major matrices, PyTorch's element order), a gradient buffer of the same layout, copying
// tensors in, and views that survive a move.
#include <Eigen/Core>
#include <catch2/catch.hpp>
#include <cstdint>
#include <decopt/parameters/parameters.hpp>
#include <numeric>
#include <type_traits>
#include <vector>

using namespace decopt;
using Catch::Contains;

namespace {

ParameterLayout mlp_layout(std::size_t alignment = ParameterLayout::kDefaultAlignment) {
  ParameterLayout layout(alignment);
  layout.add("fc1.weight", {5, 3})
      .add("fc1.bias", {5}, {.prox = false})
      .add("fc2.weight", {2, 5})
      .add("fc2.bias", {2}, {.prox = false});
  return layout;
}

bool aligned_to(const void* p, std::size_t bytes) { return reinterpret_cast<std::uintptr_t>(p) % bytes == 0; }

}  // namespace

TEST_CASE("both buffers start zero and every tensor starts on a cache line", "[parameters][flat]") {
  FlatParameters flat(mlp_layout());
  REQUIRE(flat.size() == flat.layout().size());
  CHECK(flat.alignment_bytes() == 64);
  for (float v : flat.span()) CHECK(v == 0.0f);
  for (float v : flat.gradients().span()) CHECK(v == 0.0f);
  CHECK(flat.gradients().span().data() != flat.span().data());
  for (const Segment& s : flat.layout().segments()) {
    CHECK(aligned_to(flat.view(s.name).data(), 64));
    CHECK(aligned_to(flat.gradients().view(s.name).data(), 64));
  }
  FlatParameters wide(mlp_layout(32));
  CHECK(wide.alignment_bytes() == 128);
  CHECK(aligned_to(wide.view("fc2.bias").data(), 128));
  FlatParameters packed(mlp_layout(1));
  CHECK(packed.alignment_bytes() == 64);
  CHECK(packed.size() == 15 + 5 + 10 + 2);
}

TEST_CASE("views alias the flat buffers; matrices are row-major as in PyTorch", "[parameters][flat]") {
  FlatParameters flat(mlp_layout());
  const Segment& w = flat.layout().segment("fc1.weight");
  const std::span<float> view = flat.view("fc1.weight");
  CHECK(view.data() == flat.span().data() + w.offset);
  CHECK(view.size() == 15);

  auto matrix = flat.matrix("fc1.weight");
  STATIC_REQUIRE(std::is_same_v<decltype(matrix)::PlainObject, RowMajorMatrixXf>);
  CHECK(matrix.data() == view.data());
  REQUIRE(matrix.rows() == 5);
  REQUIRE(matrix.cols() == 3);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j) matrix(i, j) = static_cast<float>(10 * i + j);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j)  // element (i, j) of a contiguous [5, 3] tensor is at i·3 + j
      CHECK(flat.span()[w.offset + static_cast<std::size_t>(3 * i + j)] == static_cast<float>(10 * i + j));

  auto bias = flat.vector("fc1.bias");
  CHECK(bias.size() == 5);
  bias.setConstant(0.5f);
  // A layer through the views: y = W x + b, computed by Eigen over decopt's memory.
  const Eigen::Vector3f x(1.0f, 2.0f, 3.0f);
  const Eigen::VectorXf y = matrix * x + bias;
  for (int i = 0; i < 5; ++i) CHECK(y[i] == Approx(10.0 * i * 6 + (0 + 2 + 6) + 0.5));
  CHECK(flat.layout().padding_is_zero(flat.span()));

  const std::span<float> g = flat.gradients().view("fc2.weight");
  CHECK(g.data() == flat.gradients().span().data() + flat.layout().segment("fc2.weight").offset);
  flat.gradients().matrix("fc2.weight")(1, 4) = 7.0f;
  CHECK(g[9] == 7.0f);
  flat.gradients().vector("fc2.bias").setConstant(-1.0f);
  flat.zero_gradients();
  for (float v : flat.gradients().span()) CHECK(v == 0.0f);
  CHECK(flat.span()[w.offset + 3] == 10.0f);  // the parameters are not touched
}

TEST_CASE("tensors that live apart are copied in once", "[parameters][flat]") {
  FlatParameters flat(mlp_layout());
  std::vector<float> weight(15);
  std::iota(weight.begin(), weight.end(), 1.0f);
  flat.assign("fc1.weight", weight);
  CHECK(std::vector<float>(flat.view("fc1.weight").begin(), flat.view("fc1.weight").end()) == weight);
  CHECK(flat.matrix("fc1.weight")(1, 0) == 4.0f);
  CHECK_THROWS_WITH(flat.assign("fc1.bias", weight), Contains("'fc1.bias' has 5 floats, got 15"));
  CHECK_THROWS_WITH(flat.assign("fc3.weight", weight), Contains("no segment named 'fc3.weight'"));
  flat.gradients().assign("fc2.bias", std::vector<float>{1.0f, 2.0f});
  CHECK(flat.gradients().view("fc2.bias")[1] == 2.0f);
  CHECK(flat.layout().padding_is_zero(flat.span()));
}

TEST_CASE("matrix() needs a 2-D segment; const views are read-only", "[parameters][flat]") {
  ParameterLayout layout;
  layout.add("conv.weight", {2, 1, 3, 3}).add("scale", {});
  FlatParameters flat(layout);
  CHECK_THROWS_WITH(flat.matrix("conv.weight"), Contains("'conv.weight' has 4 dimensions, matrix() needs 2"));
  CHECK_THROWS_AS(flat.matrix("scale"), ConfigError);
  CHECK(flat.vector("conv.weight").size() == 18);

  const FlatParameters& read_only = flat;
  STATIC_REQUIRE(std::is_same_v<decltype(read_only.view("scale")), std::span<const float>>);
  STATIC_REQUIRE(std::is_same_v<decltype(read_only.gradients()), FlatView<const float>>);
  const FlatView<const float> as_const = flat.parameters();
  CHECK(as_const.view("scale").data() == flat.view("scale").data());

  std::vector<float> wrong(layout.size() + 1);
  CHECK_THROWS_WITH(FlatView<float>(layout, wrong), Contains("does not match"));
  CHECK_THROWS_WITH(FlatParameters(ParameterLayout{}), Contains("no segments"));
}

TEST_CASE("moving FlatParameters keeps every view valid", "[parameters][flat]") {
  FlatParameters flat(mlp_layout());
  const std::span<float> w = flat.view("fc2.weight");
  const std::span<float> g = flat.gradients().view("fc2.weight");
  const ParameterLayout* layout = &flat.layout();
  FlatParameters moved(std::move(flat));
  CHECK(moved.view("fc2.weight").data() == w.data());
  CHECK(moved.gradients().view("fc2.weight").data() == g.data());
  CHECK(&moved.layout() == layout);
  w[0] = 3.0f;
  CHECK(moved.matrix("fc2.weight")(0, 0) == 3.0f);
  STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<FlatParameters>);
}
