// Message integrity: the CRC-32C of decopt/core/crc32c.hpp (known answers, every code path the
// same value) and the checksum trailer of every compressed message (every flipped bit and every
// short burst of a genuine message is refused).
#include <catch2/catch.hpp>

#include <decopt/compress/compress.hpp>
#include <decopt/core/crc32c.hpp>

#include <cstdint>
#include <cstring>
#include <string_view>
#include <tuple>
#include <vector>

#include "all_pipelines.hpp"

using namespace decopt;
using namespace decopt::test;

namespace {

std::span<const std::byte> bytes_of(std::string_view s) { return {reinterpret_cast<const std::byte*>(s.data()), s.size()}; }

std::vector<std::byte> random_bytes(std::size_t n, std::uint64_t seed) {
  std::vector<std::byte> out(n);
  Rng rng(seed);
  for (auto& b : out) b = static_cast<std::byte>(rng.next() >> 56);
  return out;
}

// The raw register of the portable loop, as crc32c() reports it.
std::uint32_t portable_crc(std::span<const std::byte> b, std::uint32_t crc = 0) {
  return ~detail::crc32c::portable(~crc, reinterpret_cast<const unsigned char*>(b.data()), b.size());
}

}  // namespace

TEST_CASE("CRC-32C: known answers", "[compress][crc32c]") {
  REQUIRE(crc32c(bytes_of("123456789")) == 0xE3069283u);
  REQUIRE(portable_crc(bytes_of("123456789")) == 0xE3069283u);
  REQUIRE(crc32c(bytes_of("")) == 0u);
  // RFC 3720 (iSCSI), appendix B.4
  std::vector<std::byte> zeros(32, std::byte{0}), ones(32, std::byte{0xFF}), up(32), down(32);
  for (std::size_t i = 0; i < 32; ++i) {
    up[i] = static_cast<std::byte>(i);
    down[i] = static_cast<std::byte>(31 - i);
  }
  REQUIRE(crc32c(zeros) == 0x8A9136AAu);
  REQUIRE(crc32c(ones) == 0x62A8AB43u);
  REQUIRE(crc32c(up) == 0x46DD794Eu);
  REQUIRE(crc32c(down) == 0x113FDB5Cu);
}

TEST_CASE("CRC-32C: the instruction path, the portable path and chaining agree", "[compress][crc32c]") {
  // Lengths around the three-stream blocks (3·256 and 3·4096 bytes) and odd alignments.
  const auto data = random_bytes(3 * 3 * 4096 + 4096 + 100, 5);
  const std::size_t lengths[] = {0, 1, 7, 8, 9, 63, 255, 767, 768, 769, 1000, 12287, 12288, 12289, 3 * 12288 + 777, 40000};
  std::size_t mismatches = 0;
  for (const std::size_t n : lengths) {
    for (std::size_t offset = 0; offset < 9; ++offset) {
      const auto b = std::span<const std::byte>(data).subspan(offset, n);
      const std::uint32_t expected = portable_crc(b);
      mismatches += crc32c(b) != expected;
#if defined(DECOPT_CRC32C_X86)
      if (detail::crc32c::hardware_available())
        mismatches += ~detail::crc32c::hardware(~0u, reinterpret_cast<const unsigned char*>(b.data()), n) != expected;
#endif
      const std::size_t cut = n / 3;
      mismatches += crc32c(b.subspan(cut), crc32c(b.first(cut))) != expected;
      mismatches += portable_crc(b.subspan(cut), portable_crc(b.first(cut))) != expected;
    }
  }
  REQUIRE(mismatches == 0);
}

TEST_CASE("CRC-32C: the zero-append operator joins streams", "[compress][crc32c]") {
  // Shift(L) maps the register after A to the register after A followed by L zero bytes.
  const auto a = random_bytes(1000, 6);
  const std::uint32_t after_a = detail::crc32c::portable(0x12345678u, reinterpret_cast<const unsigned char*>(a.data()), a.size());
  for (const std::size_t l : {std::size_t{1}, std::size_t{3}, std::size_t{256}, std::size_t{4096}, std::size_t{5000}}) {
    const std::vector<unsigned char> zeros(l, 0);
    const detail::crc32c::Shift shift(l);
    REQUIRE(shift(after_a) == detail::crc32c::portable(after_a, zeros.data(), l));
  }
}

TEST_CASE("messages are version 2 and end with the CRC-32C of everything before", "[compress][integrity]") {
  Compressor<Dense, DitheredQuantizer, VectorSourceCoder> c({}, {4, Norm::Linf});
  const auto v = gaussian(1000, 3);
  Rng rng(1);
  std::vector<float> q(v.size());
  std::vector<std::byte> msg{std::byte{7}};  // appended after existing bytes: only its own are summed
  c.encode(v, rng, msg, q);
  const std::span<const std::byte> m = std::span<const std::byte>(msg).subspan(1);
  REQUIRE(std::to_integer<int>(m[2]) == 2);
  std::uint32_t trailer;
  std::memcpy(&trailer, m.data() + m.size() - 4, 4);
  REQUIRE(trailer == crc32c(m.first(m.size() - 4)));
  std::vector<float> acc(v.size(), 0.0f);
  c.decode_add(m, 1.0f, acc);
  REQUIRE(acc == q);
  // a wrong checksum alone is refused, naming it
  std::vector<std::byte> wrong(m.begin(), m.end());
  wrong.back() ^= std::byte{0x40};
  REQUIRE_THROWS_WITH(c.decode_add(wrong, 1.0f, acc), Catch::Contains("checksum"));
}

namespace {

// Every single-bit flip and 400 bursts of 2–32 bits of a genuine message of `pipeline` are refused.
template <class P>
void every_corruption_refused(P pipeline) {
  CAPTURE(P::name());
  const std::size_t d = 200;
  const auto v = gaussian(d, 17);
  Rng rng(4);
  std::vector<float> q(d), acc(d);
  std::vector<std::byte> msg;
  pipeline.encode(v, rng, msg, q);
  const std::size_t bits = msg.size() * 8;
  std::size_t accepted = 0, refused = 0;
  auto attempt = [&](const std::vector<std::byte>& bad) {
    try {
      pipeline.decode_add(bad, 1.0f, acc);
      ++accepted;
    } catch (const DecodeError&) {
      ++refused;
    }
  };
  std::vector<std::byte> bad = msg;
  for (std::size_t bit = 0; bit < bits; ++bit) {
    bad[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
    attempt(bad);
    bad[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
  }
  // bursts: both ends flipped, anything between (a CRC-32 detects every burst of ≤ 32 bits)
  Rng fuzz(9);
  for (int trial = 0; trial < 400; ++trial) {
    bad = msg;
    const std::size_t length = 2 + fuzz.below(31);
    const std::size_t first = fuzz.below(bits - length + 1);
    for (std::size_t bit = first; bit < first + length; ++bit)
      if (bit == first || bit == first + length - 1 || fuzz.below(2) != 0) bad[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
    attempt(bad);
  }
  REQUIRE(accepted == 0);
  REQUIRE(refused == bits + 400);
  // the genuine message itself still decodes to q
  std::vector<float> fresh(d, 0.0f);
  pipeline.decode_add(msg, 1.0f, fresh);
  REQUIRE(fresh == q);
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("every flipped bit and every burst of up to 32 bits in a genuine message is refused",
                        "[compress][integrity]", AllPipelines) {
  every_corruption_refused(make_pipeline<TestType>());
}

TEST_CASE("bucketed dithering and half-precision pipelines refuse every flipped bit and short burst too", "[compress][integrity]") {
  std::apply([](auto... pipeline) { (every_corruption_refused(pipeline), ...); }, configured_pipelines());
}

TEST_CASE("a float payload larger than the caches is copied, streamed and checksummed exactly", "[compress][integrity]") {
  // 2^22 + 3 floats (above the 16 MiB at which the copy streams), written after one byte so that
  // the payload starts unaligned, with a tail that is not a whole chunk.
  const std::size_t d = (std::size_t{1} << 22) + 3;
  Compressor<Dense, Identity, RawCoder> c;
  const auto v = gaussian(d, 12);
  Rng rng(1);
  std::vector<float> q(d);
  std::vector<std::byte> out{std::byte{1}};
  c.encode(v, rng, out, q);
  const std::span<const std::byte> msg = std::span<const std::byte>(out).subspan(1);
  std::uint32_t trailer;
  std::memcpy(&trailer, msg.data() + msg.size() - 4, 4);
  REQUIRE(trailer == crc32c(msg.first(msg.size() - 4)));
  REQUIRE(std::memcmp(msg.data() + msg.size() - 4 - 4 * d, v.data(), 4 * d) == 0);
  std::vector<float> acc(d, 0.0f);
  c.decode_add(msg, 1.0f, acc);
  REQUIRE(acc == v);
  std::vector<std::byte> bad(msg.begin(), msg.end());
  bad[bad.size() / 2] ^= std::byte{0x10};
  REQUIRE_THROWS_AS(c.decode_add(bad, 1.0f, acc), DecodeError);
}
