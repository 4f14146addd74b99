// A counting global operator new, for tests that bound what a call allocates. Include it in
// exactly one translation unit of a program: it replaces every form of operator new and delete
// for the whole program. It always counts the bytes live (a few relaxed atomic operations per
// allocation); between Meter::start() and stop() it also records the peak and refuses, with
// std::bad_alloc, any allocation that would put more than a cap above the start — so that a
// resource bomb fails the test at once instead of exhausting the machine.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace decopt::fuzz::meter {

namespace state {
inline std::atomic<long long> live{0};
inline std::atomic<long long> peak{0};
inline std::atomic<long long> baseline{0};
inline std::atomic<long long> cap{0};
inline std::atomic<bool> on{false};
}  // namespace state

/// What one metered stretch allocated: the peak above the bytes live at its start, and the bytes
/// it left allocated (negative when it freed more than it kept).
struct Reading {
  long long peak = 0;
  long long retained = 0;
};

/// Starts metering; allocations beyond `cap` bytes above what is live now throw std::bad_alloc.
inline void start(long long cap) {
  const long long now = state::live.load();
  state::baseline.store(now);
  state::peak.store(now);
  state::cap.store(cap);
  state::on.store(true);
}
inline Reading stop() {
  state::on.store(false);
  return {state::peak.load() - state::baseline.load(), state::live.load() - state::baseline.load()};
}

namespace detail {
// Each block carries its size in front, in `pad` bytes (the alignment it is given).
inline void* allocate(std::size_t n, std::size_t pad, bool aligned) {
  const auto size = static_cast<long long>(n);
  const long long now = state::live.fetch_add(size, std::memory_order_relaxed) + size;
  if (state::on.load(std::memory_order_relaxed)) {
    if (now - state::baseline.load(std::memory_order_relaxed) > state::cap.load(std::memory_order_relaxed)) {
      state::live.fetch_sub(size, std::memory_order_relaxed);
      throw std::bad_alloc();
    }
    long long peak = state::peak.load(std::memory_order_relaxed);
    while (now > peak && !state::peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }
  const std::size_t total = (n + pad + pad - 1) / pad * pad;  // aligned_alloc wants a multiple
  void* block = aligned ? std::aligned_alloc(pad, total) : std::malloc(n + pad);
  if (block == nullptr) {
    state::live.fetch_sub(size, std::memory_order_relaxed);
    throw std::bad_alloc();
  }
  *static_cast<std::size_t*>(block) = n;
  return static_cast<char*>(block) + pad;
}
inline void release(void* p, std::size_t pad) noexcept {
  if (p == nullptr) return;
  char* block = static_cast<char*>(p) - pad;
  state::live.fetch_sub(static_cast<long long>(*reinterpret_cast<std::size_t*>(block)), std::memory_order_relaxed);
  std::free(block);
}
inline constexpr std::size_t plain = alignof(std::max_align_t);
inline std::size_t pad_of(std::align_val_t a) noexcept { return std::max(plain, static_cast<std::size_t>(a)); }
}  // namespace detail

}  // namespace decopt::fuzz::meter

// ---- the replacements ----
void* operator new(std::size_t n) { return decopt::fuzz::meter::detail::allocate(n, decopt::fuzz::meter::detail::plain, false); }
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return operator new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(std::size_t n, std::align_val_t a) {
  return decopt::fuzz::meter::detail::allocate(n, decopt::fuzz::meter::detail::pad_of(a), true);
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return operator new(n, a);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept { return operator new(n, a, t); }

void operator delete(void* p) noexcept { decopt::fuzz::meter::detail::release(p, decopt::fuzz::meter::detail::plain); }
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { operator delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { operator delete(p); }
void operator delete(void* p, std::align_val_t a) noexcept {
  decopt::fuzz::meter::detail::release(p, decopt::fuzz::meter::detail::pad_of(a));
}
void operator delete[](void* p, std::align_val_t a) noexcept { operator delete(p, a); }
void operator delete(void* p, std::size_t, std::align_val_t a) noexcept { operator delete(p, a); }
void operator delete[](void* p, std::size_t, std::align_val_t a) noexcept { operator delete(p, a); }
void operator delete(void* p, std::align_val_t a, const std::nothrow_t&) noexcept { operator delete(p, a); }
void operator delete[](void* p, std::align_val_t a, const std::nothrow_t&) noexcept { operator delete(p, a); }
