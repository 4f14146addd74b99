// A watchdog for tests of code that used to hang: run the code on a thread of its own and fail the
// test case when it has not returned within a time limit, instead of hanging the whole suite until
// ctest's TIMEOUT. The thread is detached, so a deadlocked one is abandoned (it ends with the
// process): the callable must own everything it touches (capture shared_ptrs or values, never
// references to the test's locals). Only the exception's message crosses back, not the exception
// object, whose reference count ThreadSanitizer cannot follow into the uninstrumented libstdc++.
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

/// What the watched call did: returned, or threw an exception with this what().
struct Outcome {
  bool threw = false;
  std::string message;
};

/// Runs f() on a detached thread and returns what it did, or fails the test case when it is still
/// running after `limit` (a hang).
template <class F>
Outcome returns_within(std::chrono::seconds limit, F f) {
  auto outcome = std::make_shared<std::promise<Outcome>>();
  auto future = outcome->get_future();
  std::thread([outcome, f = std::move(f)]() mutable {
    try {
      f();
      outcome->set_value({});
    } catch (const std::exception& e) {
      outcome->set_value({true, e.what()});
    } catch (...) {
      outcome->set_value({true, "an exception not derived from std::exception"});
    }
  }).detach();
  if (future.wait_for(limit) != std::future_status::ready)
    FAIL("still running after " << limit.count() << " s: a hang (the thread is abandoned)");
  return future.get();
}

}  // namespace decopt::watchdog
