// Decoder resource bounds: crafted messages with valid framing and checksum but maximal declared
// counts (symbols, counts, Golomb parameters, non-zeros, selected coordinates, levels) must be
// refused with DecodeError using O(d) memory and leave no scratch behind. Memory is measured by
// a counting global operator new (tests/fuzz/allocation_meter.hpp, replacing it for the whole
// test executable: it only counts, and refuses allocations past a cap while metering).
#include <catch2/catch.hpp>

#include <decopt/compress/compress.hpp>

#include <cmath>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "all_pipelines.hpp"
#include "fuzz/allocation_meter.hpp"  // replaces operator new for test_compress
#include "fuzz/forge.hpp"

using namespace decopt;
using namespace decopt::test;
using decopt::fuzz::Fields;

namespace {

// Bytes allocated at the peak of one decode beyond what was live before it, and bytes it left
// allocated, and how it ended.
struct Outcome {
  long long peak = 0;
  long long retained = 0;
  std::string error;  // "DecodeError", "accepted" or the other exception
};

template <class P>
Outcome decode_measured(const P& receiver, const std::vector<std::byte>& msg, std::vector<float>& acc) {
  Outcome out;
  fuzz::meter::start(64ll << 20);  // today's resource bombs end here instead of allocating gigabytes
  try {
    receiver.decode_add(msg, 1.0f, acc);
    out.error = "accepted";
  } catch (const DecodeError&) {
    out.error = "DecodeError";
  } catch (const std::bad_alloc&) {
    out.error = "std::bad_alloc";
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  const fuzz::meter::Reading r = fuzz::meter::stop();
  out.peak = r.peak;
  out.retained = r.retained;
  return out;
}

// Payloads that declare the most a coder can declare for a vector of n coded entries (k of them
// at explicit positions when `positions`), levels in [−s, s] or float values, each made invalid
// at its very end so that a decoder has to get through all of it before refusing.
template <class P>
std::vector<std::vector<std::byte>> maximal_payloads(std::size_t n, std::size_t k, bool positions, std::uint64_t s) {
  using C = typename P::coder_type;
  using Q = typename P::quantizer_type;
  std::vector<std::vector<std::byte>> out;
  auto add = [&](auto&& build) {
    std::vector<std::byte> payload;
    build(payload);
    out.push_back(std::move(payload));
  };
  if constexpr (Q::float_values) {
    const std::size_t values = positions ? k : n;
    auto then_floats = [&](std::vector<std::byte>& p) { fuzz::put_floats(p, values, 1.0f, std::nanf("")); };
    if constexpr (std::is_same_v<C, VectorSourceCoder>) {
      add([&](auto& p) {
        if (positions) {
          const fuzz::VscRank all{1, k, 1, k / 8 + 1};  // unary runs of 0: positions 0…k−1
          fuzz::put_vsc(p, std::span(&all, 1), std::byte{0xFF}, std::byte{0xFF});
        }
        then_floats(p);
      });
    } else if constexpr (std::is_same_v<C, EliasCoder>) {
      add([&](auto& p) {
        if (positions) fuzz::put_elias_positions(p, k);
        then_floats(p);
      });
    } else {
      add([&](auto& p) {
        if (positions) {  // a bitmap with every one of the n positions set: more than k
          BitWriter w(p);
          w.write(1, 1);
          fuzz::put_fixed(w, n, 1, 1, 1);
          w.finish();
        }
        then_floats(p);
      });
    }
  } else if constexpr (std::is_same_v<C, VectorSourceCoder>) {
    const std::uint64_t m_max = std::min<std::uint64_t>(2 * s, n);
    // as many symbols as s allows, one hit each, a byte of stream each (Golomb 2: "10" = run 0),
    // the last stream unterminated
    add([&](auto& p) {
      std::vector<fuzz::VscRank> ranks;
      for (std::uint64_t z = 1; z <= m_max; ++z) ranks.push_back({z, 1, 2, 1});
      fuzz::put_vsc(p, ranks, std::byte{0x01}, std::byte{0x00});
    });
    // up to 16 symbols sharing every position, streams of one byte per codeword, all zeros
    add([&](auto& p) {
      const std::uint64_t m = std::min<std::uint64_t>(m_max, 16);
      std::vector<fuzz::VscRank> ranks;
      for (std::uint64_t z = 1; z <= m; ++z) ranks.push_back({z, n / m, 2, n / m});
      fuzz::put_vsc(p, ranks, std::byte{0}, std::byte{0});
    });
    // counts far beyond what their one-byte streams can hold
    add([&](auto& p) {
      const std::uint64_t m = std::min<std::uint64_t>(m_max, 8);
      std::vector<fuzz::VscRank> ranks;
      for (std::uint64_t z = 1; z <= m; ++z) ranks.push_back({z, n / m, 3, 1});
      fuzz::put_vsc(p, ranks, std::byte{0x55}, std::byte{0x55});
    });
    // the largest Golomb parameter the old format accepted
    add([&](auto& p) {
      const fuzz::VscRank one{1, std::max<std::uint64_t>(1, n / 2), std::uint64_t{1} << 40, n / 16 + 1};
      fuzz::put_vsc(p, std::span(&one, 1), std::byte{0}, std::byte{0});
    });
  } else if constexpr (std::is_same_v<C, EliasCoder>) {
    add([&](auto& p) { fuzz::put_elias_levels(p, positions ? k : n, s + 1); });
  } else {
    add([&](auto& p) {
      BitWriter w(p);
      if (positions) {
        w.write(1, 1);
        fuzz::put_fixed(w, n, 1, 1, 1);
      }
      const int width = RawCoder::level_bits(static_cast<int>(s));
      fuzz::put_fixed(w, positions ? k : n, width, s + 1, 2 * s + 1);
      w.finish();
    });
  }
  return out;
}

// Every crafted message for a receiver like `receiver` of dimension d: the header fields it
// accepts, and the largest selected count and level count a header can declare.
template <class P>
std::vector<std::vector<std::byte>> maximal_messages(const P& receiver, std::size_t d) {
  using S = typename P::sparsifier_type;
  using Q = typename P::quantizer_type;
  std::vector<Fields> variants{fuzz::fields_of(receiver, d)};
  if constexpr (!std::is_same_v<S, Dense>) {
    Fields f = variants[0];
    f.k = d;
    variants.push_back(f);
  }
  if constexpr (std::is_same_v<Q, DitheredQuantizer>) {
    Fields f = variants[0];
    f.levels = DitheredQuantizer::max_levels;
    variants.push_back(f);
  }
  std::vector<std::vector<std::byte>> out;
  for (const Fields& f : variants) {
    const bool positions = S::sparse && !std::is_same_v<S, RandomK>;
    const std::size_t n = std::is_same_v<S, RandomK> ? static_cast<std::size_t>(f.k) : d;
    const std::uint64_t s = std::is_same_v<Q, DitheredQuantizer> ? f.levels : 1;
    for (const auto& payload : maximal_payloads<P>(n, static_cast<std::size_t>(f.k), positions, s)) {
      auto msg = fuzz::header<P>(f);
      msg.insert(msg.end(), payload.begin(), payload.end());
      out.push_back(fuzz::seal(std::move(msg)));
    }
  }
  return out;
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("crafted maximal headers are refused with O(d) memory and no scratch left behind",
                        "[compress][bounds]", AllPipelines) {
  // The receivers: s = 4 (a message may claim more) and the largest s, which allows 65534 symbols.
  const std::size_t d = std::size_t{1} << 16;
  for (const int levels : {4, DitheredQuantizer::max_levels}) {
    const auto receiver = make_pipeline<TestType>(levels, Norm::Linf);
    std::vector<float> acc(d, 0.0f);
    const auto messages = maximal_messages(receiver, d);
    for (std::size_t i = 0; i < messages.size(); ++i) {
      CAPTURE(TestType::name(), levels, i, messages[i].size());
      const Outcome o = decode_measured(receiver, messages[i], acc);
      CAPTURE(o.peak, o.retained);
      REQUIRE(o.error == "DecodeError");
      // O(d + s): the word decoder's bitmaps and tables (≤ 8 bytes per position), a sparse
      // selection's positions (4 per selected coordinate), the level tables, fixed tables
      REQUIRE(o.peak <= fuzz::decode_allocation_bound(receiver, d));
      REQUIRE(o.retained <= 0);
    }
  }
}

TEST_CASE("the counting allocator sees the word decoder's scratch, which a refusal releases", "[compress][bounds]") {
  // The measurement itself. A dense message keeps its hit bitmaps as per-thread scratch for the
  // next one; a refused message (here: eight symbols sharing the positions, streams of zeros)
  // gives it back.
  using P = Compressor<Dense, DitheredQuantizer, VectorSourceCoder>;
  const std::size_t d = std::size_t{1} << 18;
  P pipeline({}, {4, Norm::Linf});
  const auto v = gaussian(d, 8);
  Rng rng(2);
  std::vector<float> q(d), acc(d, 0.0f);
  std::vector<std::byte> genuine;
  pipeline.encode(v, rng, genuine, q);
  auto refused = fuzz::header<P>(fuzz::fields_of(pipeline, d));
  std::vector<fuzz::VscRank> ranks;
  for (std::uint64_t z = 1; z <= 8; ++z) ranks.push_back({z, d / 9, 2, d / 9});
  fuzz::put_vsc(refused, ranks, std::byte{0}, std::byte{0});
  refused = fuzz::seal(std::move(refused));

  REQUIRE(decode_measured(pipeline, refused, acc).error == "DecodeError");
  const Outcome first = decode_measured(pipeline, genuine, acc);
  REQUIRE(first.error == "accepted");
  REQUIRE(first.retained >= static_cast<long long>(d / 8));  // ≈ 3 bits per position of bitmaps
  REQUIRE(first.peak <= static_cast<long long>(2 * d));
  REQUIRE(decode_measured(pipeline, genuine, acc).peak < first.peak);  // reused
  const Outcome after = decode_measured(pipeline, refused, acc);
  REQUIRE(after.error == "DecodeError");
  REQUIRE(after.retained <= -first.retained);
}
