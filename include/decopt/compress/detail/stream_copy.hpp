// decopt/compress/detail/stream_copy.hpp — a copy with non-temporal stores, for message payloads
// larger than the caches. Internal: include "decopt/compress/compress.hpp" instead.
//
// A plain store first reads the destination's cache line (read for ownership), which for an
// output larger than the caches costs as much memory traffic as the writes. memcpy avoids that
// only for one large call; the compressor copies a payload a chunk at a time (checksumming each
// while it is in cache), so it streams the chunks itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace decopt::detail {

/// Copies n bytes from src to dst (not overlapping) with non-temporal stores where SSE2 is
/// compiled for, else memcpy. Call stream_fence() after the last one.
inline void copy_streaming(std::byte* dst, const std::byte* src, std::size_t n) noexcept {
#if defined(__SSE2__)
  std::size_t head = (16 - reinterpret_cast<std::uintptr_t>(dst) % 16) % 16;
  if (head > n) head = n;
  std::memcpy(dst, src, head);
  std::size_t i = head;
  for (; i + 64 <= n; i += 64) {
    for (std::size_t k = 0; k < 64; k += 16)
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + k), _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + k)));
  }
  std::memcpy(dst + i, src + i, n - i);
#else
  std::memcpy(dst, src, n);
#endif
}

/// Orders the non-temporal stores of copy_streaming before the stores that follow.
inline void stream_fence() noexcept {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace decopt::detail
