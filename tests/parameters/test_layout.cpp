// ParameterLayout: aligned placement and zero padding, validation of names, shapes and sizes, the
// fingerprint, save/load round trips, refusal of a different layout naming the first differing
// segment, and malformed saved layouts (DecodeError, bounded before allocating).
#include <catch2/catch.hpp>
#include <cstdint>
#include <decopt/parameters/parameters.hpp>
#include <limits>
#include <utility>
#include <vector>

using namespace decopt;
using Catch::Contains;

namespace {

/// A small CNN's tensors: conv kernel, bias, linear weight, bias.
ParameterLayout cnn_layout(std::size_t alignment = ParameterLayout::kDefaultAlignment) {
  ParameterLayout layout(alignment);
  layout.add("conv1.weight", {4, 1, 3, 3})
      .add("conv1.bias", {4}, {.prox = false})
      .add("fc.weight", {10, 4}, {.prox = true, .own_scale = true})
      .add("fc.bias", {10}, {.prox = false});
  return layout;
}

std::vector<std::byte> saved(const ParameterLayout& layout) {
  std::vector<std::byte> bytes;
  layout.save(bytes);
  return bytes;
}

ParameterLayout load_all(std::span<const std::byte> bytes) {
  ByteReader in(bytes);
  ParameterLayout layout = ParameterLayout::load(in);
  REQUIRE(in.remaining() == 0);
  return layout;
}

/// The binary form of a one-segment layout, written field by field as the header comment specifies.
std::vector<std::byte> one_segment_record(std::uint64_t alignment, const std::string& name,
                                          std::vector<std::int64_t> shape, std::uint64_t offset,
                                          std::uint8_t flags) {
  std::vector<std::byte> out;
  put_le<std::uint32_t>(out, 0x59414c50);
  put_varint(out, alignment);
  put_varint(out, 1);
  checkpoint::put_string(out, name);
  put_varint(out, shape.size());
  for (auto dim : shape) put_le<std::int64_t>(out, dim);
  put_le<std::uint64_t>(out, offset);
  put_le<std::uint8_t>(out, flags);
  return out;
}

}  // namespace

TEST_CASE("segments are placed at aligned offsets in the order they are added", "[parameters][layout]") {
  const ParameterLayout layout = cnn_layout();
  REQUIRE(layout.alignment() == 16);
  REQUIRE(layout.segments().size() == 4);
  const Segment& conv = layout.segment("conv1.weight");
  CHECK(conv.offset == 0);
  CHECK(conv.size == 36);
  CHECK(conv.shape == std::vector<std::int64_t>{4, 1, 3, 3});
  CHECK(conv.options == SegmentOptions{.prox = true, .own_scale = false});
  CHECK(layout.segment("conv1.bias").offset == 48);  // 36 rounded up to 16
  CHECK(layout.segment("fc.weight").offset == 64);   // 52 rounded up
  CHECK(layout.segment("fc.weight").options.own_scale);
  CHECK(layout.segment("fc.bias").offset == 112);  // 104 rounded up
  CHECK(layout.size() == 122);                     // no padding after the last segment
  CHECK(layout.parameter_count() == 90);
  CHECK(layout.segments()[2].name == "fc.weight");
  CHECK(layout.find("fc.bias") == &layout.segments()[3]);
  CHECK(layout.find("fc.gamma") == nullptr);
  CHECK_THROWS_AS(layout.segment("fc.gamma"), ConfigError);
  CHECK_THROWS_WITH(layout.segment("fc.gamma"), Contains("no segment named 'fc.gamma'"));

  std::vector<std::pair<std::size_t, std::size_t>> padding;
  layout.for_each_padding([&](std::size_t begin, std::size_t end) { padding.emplace_back(begin, end); });
  CHECK(padding == std::vector<std::pair<std::size_t, std::size_t>>{{36, 48}, {52, 64}, {104, 112}});
}

TEST_CASE("alignment 1 packs the segments; a scalar is one float", "[parameters][layout]") {
  ParameterLayout layout = cnn_layout(1);
  layout.add("temperature", {});
  CHECK(layout.segment("conv1.bias").offset == 36);
  CHECK(layout.segment("fc.weight").offset == 40);
  CHECK(layout.segment("fc.bias").offset == 80);
  CHECK(layout.segment("temperature").offset == 90);
  CHECK(layout.segment("temperature").size == 1);
  CHECK(layout.size() == 91);
  CHECK(layout.parameter_count() == 91);
  int runs = 0;
  layout.for_each_padding([&](std::size_t, std::size_t) { ++runs; });
  CHECK(runs == 0);
}

TEST_CASE("bad names, shapes, sizes and alignments are refused with ConfigError", "[parameters][layout]") {
  ParameterLayout layout;
  layout.add("w", {3, 4});
  CHECK_THROWS_WITH(layout.add("", {3}), Contains("name is empty"));
  CHECK_THROWS_WITH(layout.add("w", {3}), Contains("duplicate segment name 'w'"));
  CHECK_THROWS_WITH(layout.add("z", {3, 0}), Contains("'z' [3, 0] has dimension 1 = 0"));
  CHECK_THROWS_WITH(layout.add("n", {-2}), Contains("dimension 0 = -2"));
  const std::int64_t huge = std::int64_t{1} << 40;
  CHECK_THROWS_WITH(layout.add("big", {huge, huge}), Contains("'big'") && Contains("larger than"));
  CHECK_THROWS_AS(layout.add("max", {std::numeric_limits<std::int64_t>::max()}), ConfigError);
  // Each segment fits on its own, the sum does not.
  const auto half = static_cast<std::int64_t>(ParameterLayout::kMaxFloats / 2 + 1);
  ParameterLayout two;
  two.add("a", {half});
  CHECK_THROWS_WITH(two.add("b", {half}), Contains("'b'") && Contains("larger than"));
  // A refused segment leaves the layout as it was.
  CHECK(layout.segments().size() == 1);
  CHECK(layout.size() == 12);
  CHECK(two.segments().size() == 1);

  CHECK_THROWS_WITH(ParameterLayout(0), Contains("alignment must be a power of two"));
  CHECK_THROWS_WITH(ParameterLayout(3), Contains("got 3"));
  CHECK_THROWS_AS(ParameterLayout(2048), ConfigError);
  CHECK_NOTHROW(ParameterLayout(1024));
}

TEST_CASE("the fingerprint changes with every name, shape, option and the alignment",
          "[parameters][layout]") {
  const std::uint64_t base = cnn_layout().fingerprint();
  CHECK(cnn_layout().fingerprint() == base);
  CHECK(cnn_layout(8).fingerprint() != base);
  ParameterLayout renamed, reshaped, reoptioned, longer = cnn_layout();
  renamed.add("conv1.weights", {4, 1, 3, 3}).add("conv1.bias", {4}, {.prox = false});
  reshaped.add("conv1.weight", {4, 3, 3, 1}).add("conv1.bias", {4}, {.prox = false});
  reoptioned.add("conv1.weight", {4, 1, 3, 3}).add("conv1.bias", {4}, {.prox = true});
  ParameterLayout prefix;
  prefix.add("conv1.weight", {4, 1, 3, 3}).add("conv1.bias", {4}, {.prox = false});
  longer.add("extra", {1});
  const std::vector<std::uint64_t> fingerprints = {base,
                                                   renamed.fingerprint(),
                                                   reshaped.fingerprint(),
                                                   reoptioned.fingerprint(),
                                                   prefix.fingerprint(),
                                                   longer.fingerprint()};
  for (std::size_t a = 0; a < fingerprints.size(); ++a)
    for (std::size_t b = a + 1; b < fingerprints.size(); ++b) CHECK(fingerprints[a] != fingerprints[b]);
}

TEST_CASE("a layout round-trips through save and load", "[parameters][layout]") {
  for (std::size_t alignment : {std::size_t{1}, std::size_t{16}, std::size_t{64}}) {
    ParameterLayout layout = cnn_layout(alignment);
    layout.add("scale", {});
    const ParameterLayout loaded = load_all(saved(layout));
    CHECK(loaded == layout);
    CHECK(loaded.difference(layout).empty());
    CHECK(loaded.fingerprint() == layout.fingerprint());
    CHECK(loaded.size() == layout.size());
    CHECK(loaded.parameter_count() == layout.parameter_count());
    CHECK(loaded.segment("fc.weight").options.own_scale);
    CHECK_FALSE(loaded.segment("fc.bias").options.prox);
  }
  // Records can be concatenated: load stops at the end of its own.
  std::vector<std::byte> two = saved(cnn_layout());
  const std::size_t first = two.size();
  cnn_layout(1).save(two);
  ByteReader in(two);
  CHECK(ParameterLayout::load(in) == cnn_layout());
  CHECK(in.position() == first);
  CHECK(ParameterLayout::load(in) == cnn_layout(1));
  CHECK(load_all(saved(ParameterLayout{})).empty());
}

TEST_CASE("a different layout is refused, naming the first differing segment", "[parameters][layout]") {
  const ParameterLayout expected = cnn_layout();
  ParameterLayout wider;
  wider.add("conv1.weight", {4, 1, 3, 3})
      .add("conv1.bias", {4}, {.prox = false})
      .add("fc.weight", {10, 8}, {.prox = true, .own_scale = true})
      .add("fc.bias", {10}, {.prox = false});
  const ParameterLayout from_checkpoint = load_all(saved(wider));
  CHECK_THROWS_AS(from_checkpoint.require_same(expected, "checkpoint"), ConfigError);
  CHECK_THROWS_WITH(from_checkpoint.require_same(expected, "checkpoint"),
                    Contains("checkpoint has another parameter layout") && Contains("segment 2") &&
                        Contains("'fc.weight' [10, 8] at offset 64") && Contains("vs 'fc.weight' [10, 4]"));

  ParameterLayout shorter;
  shorter.add("conv1.weight", {4, 1, 3, 3}).add("conv1.bias", {4}, {.prox = false});
  CHECK_THROWS_WITH(shorter.require_same(expected, "checkpoint"), Contains("segment 2: none vs 'fc.weight'"));
  CHECK_THROWS_WITH(expected.require_same(shorter, "checkpoint"),
                    Contains("segment 2: 'fc.weight'") && Contains("vs none"));

  ParameterLayout no_prox_on_conv;
  no_prox_on_conv.add("conv1.weight", {4, 1, 3, 3}, {.prox = false});
  CHECK_THROWS_WITH(no_prox_on_conv.require_same(expected, "checkpoint"),
                    Contains("segment 0: 'conv1.weight' [4, 1, 3, 3] at offset 0 (no prox)"));
  CHECK_THROWS_WITH(cnn_layout(1).require_same(expected, "checkpoint"), Contains("alignment 1 floats vs 16"));
  CHECK_NOTHROW(load_all(saved(expected)).require_same(expected, "checkpoint"));
}

TEST_CASE("malformed saved layouts are refused with DecodeError", "[parameters][layout]") {
  const std::vector<std::byte> good = saved(cnn_layout());
  SECTION("every truncation") {
    for (std::size_t n = 0; n < good.size(); ++n) {
      ByteReader in(std::span<const std::byte>(good).first(n));
      CHECK_THROWS_AS(ParameterLayout::load(in), DecodeError);
    }
  }
  SECTION("bad magic") {
    auto bad = good;
    bad[0] ^= std::byte{1};
    CHECK_THROWS_WITH(load_all(bad), Contains("bad magic"));
  }
  SECTION("a valid record of each field, then one broken field at a time") {
    CHECK(load_all(one_segment_record(16, "w", {2, 3}, 0, 1)).segment("w").size == 6);
    CHECK_THROWS_WITH(load_all(one_segment_record(12, "w", {2, 3}, 0, 1)), Contains("alignment"));
    CHECK_THROWS_WITH(load_all(one_segment_record(16, "", {2, 3}, 0, 1)), Contains("name is empty"));
    CHECK_THROWS_WITH(load_all(one_segment_record(16, "w", {2, 0}, 0, 1)), Contains("dimension 1 = 0"));
    CHECK_THROWS_WITH(load_all(one_segment_record(16, "w", {2, 3}, 16, 1)), Contains("offset"));
    CHECK_THROWS_WITH(load_all(one_segment_record(16, "w", {2, 3}, 0, 4)), Contains("flags"));
    CHECK_THROWS_AS(
        load_all(one_segment_record(16, "w", {std::int64_t{1} << 40, std::int64_t{1} << 40}, 0, 1)),
        DecodeError);
  }
  SECTION("duplicate names") {
    std::vector<std::byte> bytes;
    put_le<std::uint32_t>(bytes, 0x59414c50);
    put_varint(bytes, 1);
    put_varint(bytes, 2);
    for (std::uint64_t offset : {0, 2}) {
      checkpoint::put_string(bytes, "w");
      put_varint(bytes, 1);
      put_le<std::int64_t>(bytes, 2);
      put_le<std::uint64_t>(bytes, offset);
      put_le<std::uint8_t>(bytes, 1);
    }
    CHECK_THROWS_AS(load_all(bytes), DecodeError);
    CHECK_THROWS_WITH(load_all(bytes), Contains("duplicate segment name 'w'"));
  }
  SECTION("counts larger than the bytes are refused before anything is allocated") {
    std::vector<std::byte> many;
    put_le<std::uint32_t>(many, 0x59414c50);
    put_varint(many, 16);
    put_varint(many, std::uint64_t{1} << 60);
    CHECK_THROWS_WITH(load_all(many), Contains("too many segments"));

    std::vector<std::byte> deep;
    put_le<std::uint32_t>(deep, 0x59414c50);
    put_varint(deep, 16);
    put_varint(deep, 1);
    checkpoint::put_string(deep, "w");
    put_varint(deep, std::uint64_t{1} << 60);  // rank
    deep.resize(deep.size() + 16);
    CHECK_THROWS_WITH(load_all(deep), Contains("inside a shape"));
  }
}

TEST_CASE("padding helpers find, test and clear exactly the padding floats", "[parameters][layout]") {
  const ParameterLayout layout = cnn_layout();
  std::vector<float> buffer(layout.size(), 1.0f);
  CHECK_FALSE(layout.padding_is_zero(buffer));
  layout.zero_padding(buffer);
  CHECK(layout.padding_is_zero(buffer));
  std::size_t ones = 0;
  for (float v : buffer) ones += v == 1.0f ? 1 : 0;
  CHECK(ones == layout.parameter_count());
  for (const Segment& s : layout.segments())
    for (float v : s.slice(std::span<const float>(buffer))) CHECK(v == 1.0f);
  std::vector<float> short_buffer(layout.size() - 1);
  CHECK_THROWS_WITH(layout.zero_padding(short_buffer), Contains("does not match"));
  CHECK_THROWS_WITH(layout.segment("fc.bias").slice(std::span<float>(short_buffer)),
                    Contains("'fc.bias' ends at float 122"));
}

TEST_CASE("SegmentOptions::for_shape regularises matrices and kernels, not biases", "[parameters][layout]") {
  const std::vector<std::int64_t> kernel{8, 4, 3, 3}, matrix{10, 64}, bias{10}, scalar{};
  CHECK(SegmentOptions::for_shape(kernel).prox);
  CHECK(SegmentOptions::for_shape(matrix).prox);
  CHECK_FALSE(SegmentOptions::for_shape(bias).prox);
  CHECK_FALSE(SegmentOptions::for_shape(scalar).prox);
  CHECK_FALSE(SegmentOptions::for_shape(matrix).own_scale);
}
