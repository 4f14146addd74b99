// decopt/core/threads.hpp — starting a group of threads that wait for each other, exception-safely.
//
// Threads that synchronise with each other (a barrier, a master–worker channel, a network) wait
// forever for a peer that never started when std::thread's constructor throws half-way through
// the group: std::system_error (EAGAIN) under a memory or thread limit, e.g. `ulimit -v` with 800
// threads. Joining the started ones then hangs. start_threads starts them all or, when one cannot
// be started, calls release() so that the started ones stop waiting, joins them and throws an
// Error naming how many had started.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "decopt/core/error.hpp"

namespace decopt {

/// Starts one thread running `work`. The default (an empty ThreadStarter) makes a std::jthread; a
/// custom starter can name or pin its threads — or, in a test, fail the way a resource limit does.
using ThreadStarter = std::function<std::jthread(std::function<void()> work)>;

namespace detail {

/**
 * Starts body(first), …, body(first + count − 1), one thread each, by `starter`.
 *
 * @param who      names the caller in the error, e.g. "asyvrsc-shared"
 * @param release  called as release(started) when a thread cannot be started: it must make the
 *                 `started` threads already running return (drop their barrier places, close
 *                 their channel, abort their network), since they are joined right after
 * @return the threads; `body` must outlive them (destroying the vector joins them)
 * @throws Error "<who>: could not start thread k of count (<reason>); the k threads already
 *         started were stopped and joined" when the starter throws (std::system_error,
 *         std::bad_alloc …); nothing is left running.
 */
template <class Body, class Release>
std::vector<std::jthread> start_threads(const std::string& who, int first, int count, const Body& body,
                                        Release&& release, const ThreadStarter& starter = {}) {
  std::vector<std::jthread> threads;
  threads.reserve(static_cast<std::size_t>(count));
  std::string reason;
  try {
    for (int i = first; i < first + count; ++i) {
      std::function<void()> work = [&body, i] { body(i); };
      threads.push_back(starter ? starter(std::move(work)) : std::jthread(std::move(work)));
    }
    return threads;
  } catch (const std::exception& e) {
    reason = e.what();
  } catch (...) {
    reason = "an exception not derived from std::exception";
  }
  const std::size_t started = threads.size();
  release(started);
  threads.clear();  // joins them: release() has let them return
  throw Error("decopt: " + who + ": could not start thread " + std::to_string(started + 1) + " of " +
              std::to_string(count) + " (" + reason + "); the " + std::to_string(started) +
              " threads already started were stopped and joined");
}

}  // namespace detail
}  // namespace decopt
