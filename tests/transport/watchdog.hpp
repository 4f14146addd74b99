// A watchdog for tests of code that used to hang: run the code on a thread of its own and fail the
// test case when it has not returned within a time limit, instead of hanging the whole suite until
// ctest's TIMEOUT. The thread is detached, so a deadlocked one is abandoned (it ends with the
// process): the callable must own everything it touches (capture shared_ptrs or values, never
// references to the test's locals).
#pragma once

#include <catch2/catch.hpp>

#include <chrono>
#include <exception>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>

namespace decopt::watchdog {

/// Runs f() on a detached thread; returns the exception it threw (null if none), or fails the
/// test case when it is still running after `limit` (a hang).
template <class F>
std::exception_ptr returns_within(std::chrono::seconds limit, F f) {
  auto outcome = std::make_shared<std::promise<std::exception_ptr>>();
  auto future = outcome->get_future();
  std::thread([outcome, f = std::move(f)]() mutable {
    try {
      f();
      outcome->set_value(nullptr);
    } catch (...) {
      outcome->set_value(std::current_exception());
    }
  }).detach();
  if (future.wait_for(limit) != std::future_status::ready)
    FAIL("still running after " << limit.count() << " s: a hang (the thread is abandoned)");
  return future.get();
}

/// The message of the exception in `e` (rethrows it to read it); "" for none.
inline std::string message_of(const std::exception_ptr& e) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}

}  // namespace decopt::watchdog
