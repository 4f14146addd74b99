// decopt/mpi.hpp — MpiTransport: one MPI process per node, across machines; MpiMasterWorkerChannel
// and optimize_mpi: AsyVRSC-Distributed with one process per worker; MpiSession and the bounded
// collectives (require_same_settings, mpi_sum, mpi_gather) a program built on them needs. Not part
// of the umbrella header (it needs MPI); link decopt::mpi.
//
// No wait here can block forever. A stopped, crashed or stuck rank never answers, and a blocking
// MPI call (MPI_Wait, MPI_Barrier, MPI_Allreduce, MPI_Finalize) would then hang every rank that
// waits for it. So every wait polls a non-blocking call (MPI_Test on an MPI_Isend, MPI_Improbe,
// MPI_Iallreduce, MPI_Ibarrier, ...) in one loop (detail::poll_until) and gives up after
// MpiOptions::timeout with a TransportError naming this rank and what it waited for (for
// MpiTransport: the neighbour and the round). What MPI may still read or write after such a
// timeout — a send's bytes, a collective's buffers — is kept until the program ends
// (detail::abandon), never freed under MPI's feet. After a TransportError the job cannot end
// cleanly (MPI_Finalize would wait for the missing rank): MpiSession::end_job_after ends it with
// MPI_Abort once the error is printed, and ~MpiSession aborts too if the other ranks do not reach
// the end within the timeout.
//
// MpiTransport::post copies the message into a buffer the transport owns and starts one
// non-blocking send of it to every neighbour (MPI_Isend), tagged with the exchange number modulo
// a tag window; it never waits, and the caller may reuse or free its buffer at once, so the
// optimizer and the transport can be destroyed in either order. (The copy is one memcpy of the
// compressed message per round, small next to encoding it.) A neighbour is at most one exchange
// ahead (it cannot pass an exchange without this rank's message), so at most two or three of a
// rank's messages are ever in flight and their buffers are recycled. collect() receives one
// message per neighbour of that exchange whatever its size (MPI_Improbe + MPI_Get_count +
// MPI_Mrecv), in any arrival order. MPI keeps messages between two ranks with one tag in order, so
// tags modulo the window never mix exchanges up. post_to / collect_from (PeerTransport) send and
// receive one neighbour's message with the same tags, for time-varying schedules (build the
// transport on the schedule's union graph). The constructor checks, collectively, that every
// rank holds the same topology (its fingerprint); the destructor waits, at most the timeout, for
// its last sends — or not at all when an exception is unwinding the stack (the receivers may be
// gone).
//
// MpiMasterWorkerChannel carries AsyVRSCDistributed (compositional/asyvrsc_distributed.hpp) over
// MPI: rank 0 is the master, every other rank a worker, with the two message kinds of
// master_worker.hpp — (epoch, version, snapshot length, end) + x and the epoch's snapshot, master
// to worker; (epoch, version, end) + the direction v, worker to master (MPI_ANY_SOURCE) — and an
// "end" handshake that leaves nothing in flight. optimize_mpi runs the whole solver with one call
// per rank and leaves rank 0's x and result on every rank. Its waits share MpiTransport's poll
// loop and so its timeout.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "decopt/compositional/asyvrsc_distributed.hpp"
#include "decopt/compositional/master_worker.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/optimizer/checkpoint.hpp"  // fnv1a64, put_string, get_string
#include "decopt/topology/topology.hpp"
#include "decopt/transport/thread_network.hpp"  // TransportError

namespace decopt {

/// Options of MpiSession, MpiTransport, MpiMasterWorkerChannel, optimize_mpi and the collectives.
struct MpiOptions {
  std::chrono::milliseconds timeout = std::chrono::seconds(60);  ///< wait for another rank before failing
  /// After this long without progress a wait sleeps poll_interval between probes; before it, it
  /// probes again at once, yielding the core (replies that come within microseconds are not
  /// delayed by a sleep, and oversubscribed ranks still get the processor).
  std::chrono::microseconds spin = std::chrono::microseconds(200);
  std::chrono::microseconds poll_interval = std::chrono::microseconds(50);
};

namespace detail {

/// What one call of a poll_until step achieved.
enum class Poll { waiting, progressed, done };

/// The wait loop of every blocking call here: calls `step` until it returns Poll::done — again at
/// once after progress; within options.spin of the last progress again after a yield; after
/// options.poll_interval (a sleep) otherwise — and throws TransportError("<who()> timed out after
/// T s waiting for <what()>") when options.timeout has passed since the start without it finishing.
template <class Step, class Who, class What>
void poll_until(const MpiOptions& options, Step&& step, Who&& who, What&& what) {
  using Clock = std::chrono::steady_clock;
  auto last_progress = Clock::now();
  const auto deadline =  // saturated: a timeout of years must not overflow the clock
      options.timeout < std::chrono::duration_cast<std::chrono::milliseconds>(Clock::time_point::max() - last_progress)
          ? last_progress + options.timeout
          : Clock::time_point::max();
  for (;;) {
    const Poll p = step();
    if (p == Poll::done) return;
    const auto now = Clock::now();
    if (p == Poll::progressed) {
      last_progress = now;
      continue;
    }
    if (now > deadline)
      throw TransportError(who() + " timed out after " +
                           std::to_string(std::chrono::duration<double>(options.timeout).count()) +
                           " s waiting for " + what());
    if (now - last_progress < options.spin) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(options.poll_interval);
    }
  }
}

/// "rank r" of this process in `comm`: who a timeout names.
inline std::string rank_name(MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  return "rank " + std::to_string(rank);
}

/// Keeps `what` — the buffers (and requests) of an operation that timed out — until the program
/// ends: MPI may still read or write them, and a collective's request can be neither freed nor
/// cancelled. Held in a static list, so leak checkers see it as reachable. One thread per process
/// uses MPI here (MPI_THREAD_FUNNELED), so the list needs no lock.
inline void abandon(std::shared_ptr<void> what) {
  static std::vector<std::shared_ptr<void>> kept;
  kept.push_back(std::move(what));
}

/// Polls `request` until it completes, at most options.timeout.
/// @throws TransportError "rank r timed out after T s waiting for <what>"
inline void wait_for(MPI_Request& request, MPI_Comm comm, const MpiOptions& options, const std::string& what) {
  poll_until(
      options,
      [&] {
        int flag = 0;
        MPI_Test(&request, &flag, MPI_STATUS_IGNORE);
        return flag ? Poll::done : Poll::waiting;
      },
      [&] { return rank_name(comm); }, [&] { return what; });
}

/// The communicators on which a collective was abandoned: they must never be freed, since MPI may
/// still progress the collective on them (Open MPI crashes if the communicator is gone).
inline std::vector<MPI_Comm>& abandoned_communicators() {
  static std::vector<MPI_Comm> comms;
  return comms;
}
inline bool has_abandoned_collective(MPI_Comm comm) {
  const auto& comms = abandoned_communicators();
  return std::find(comms.begin(), comms.end(), comm) != comms.end();
}

/// Runs one non-blocking collective on buffers it owns and returns them once it is complete:
/// `start(buffers, request)` begins it (MPI_Iallreduce, MPI_Ibcast, ...) on `buffers`, which live
/// on the heap meanwhile. A collective is matched by call order, so every rank of `comm` must call
/// the same sequence of these.
/// @throws TransportError after options.timeout (the buffers are then abandoned, not freed, and
///         `comm` is listed in abandoned_communicators)
template <class Buffers, class Start>
Buffers collective(Buffers buffers, Start&& start, MPI_Comm comm, const MpiOptions& options, const std::string& what) {
  struct Operation {
    Buffers buffers;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  auto operation = std::make_unique<Operation>(Operation{std::move(buffers)});
  start(operation->buffers, operation->request);
  try {
    wait_for(operation->request, comm, options, what);
  } catch (...) {
    abandon(std::move(operation));
    if (!has_abandoned_collective(comm)) abandoned_communicators().push_back(comm);
    throw;
  }
  return std::move(operation->buffers);
}

/// The MPI datatype of T.
template <class T>
MPI_Datatype mpi_type() {
  if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
  else if constexpr (std::is_same_v<T, int>) return MPI_INT;
  else if constexpr (std::is_same_v<T, std::int64_t>) return MPI_INT64_T;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return MPI_UINT64_T;
  else if constexpr (std::is_same_v<T, std::byte>) return MPI_BYTE;
  else static_assert(sizeof(T) == 0, "decopt: no MPI datatype for this type");
}

/// The element count of an MPI call, refused above INT_MAX.
inline int mpi_count(std::size_t n, const char* what) {
  require(n <= static_cast<std::size_t>(std::numeric_limits<int>::max()),
          std::string(what) + ": " + std::to_string(n) + " elements, more than one MPI call carries");
  return static_cast<int>(n);
}

/// {min, max} of `value` over the ranks of `comm` (collective, one reduction of {v, ~v} by MIN).
/// @throws TransportError "... waiting for <what>" after options.timeout
inline std::pair<std::uint64_t, std::uint64_t> extremes(std::uint64_t value, MPI_Comm comm, const MpiOptions& options,
                                                        const std::string& what) {
  struct Buffers {
    std::array<std::uint64_t, 2> in, out;
  };
  const auto reduced = collective(
      Buffers{{value, ~value}, {}},
      [comm](Buffers& b, MPI_Request& request) {
        MPI_Iallreduce(b.in.data(), b.out.data(), 2, MPI_UINT64_T, MPI_MIN, comm, &request);
      },
      comm, options, what);
  return {reduced.out[0], ~reduced.out[1]};
}

/// Collectively checks that every rank of `comm` passes the same d; otherwise ConfigError on every
/// rank: "<what> have different dimensions (from low to high; rank r has d)".
/// @throws TransportError when a rank does not take part within options.timeout
inline void require_same_dimension(const std::string& what, std::size_t d, MPI_Comm comm, const MpiOptions& options) {
  const auto [low, high] =
      extremes(static_cast<std::uint64_t>(d), comm, options, "the other ranks to compare " + what + "' dimensions");
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  require(low == high, what + " have different dimensions (from " + std::to_string(low) + " to " +
                           std::to_string(high) + "; rank " + std::to_string(rank) + " has " +
                           std::to_string(d) + ")");
}

/// Rank `root`'s `bytes` on every rank of `comm` (two bounded broadcasts: the size, then the bytes).
inline std::vector<std::byte> broadcast_bytes(std::vector<std::byte> bytes, int root, MPI_Comm comm,
                                              const MpiOptions& options, const std::string& what) {
  const auto size = collective(
      static_cast<std::uint64_t>(bytes.size()),
      [&](std::uint64_t& n, MPI_Request& request) { MPI_Ibcast(&n, 1, MPI_UINT64_T, root, comm, &request); }, comm,
      options, what);
  bytes.resize(static_cast<std::size_t>(size));
  const int count = mpi_count(bytes.size(), "broadcast");
  return collective(
      std::move(bytes),
      [&](std::vector<std::byte>& b, MPI_Request& request) {
        MPI_Ibcast(b.data(), count, MPI_BYTE, root, comm, &request);
      },
      comm, options, what);
}

}  // namespace detail

/// MPI_Init/MPI_Finalize for a program's lifetime (MPI_THREAD_FUNNELED), and how the program ends.
///
///   decopt::MpiSession mpi(argc, argv, options);
///   try { ... } catch (const std::exception& e) {
///     std::fprintf(stderr, "program: %s\n", e.what());
///     mpi.end_job_after(e);  // MPI_Abort after a TransportError; returns otherwise
///     return 1;
///   }
class MpiSession {
 public:
  /// @param options  options.timeout bounds the wait for the other ranks at the end (~MpiSession)
  MpiSession(int& argc, char**& argv, MpiOptions options = {}) : options_(options) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
      owner_ = true;
    }
  }
  /// MPI_Finalize once every rank has come to its end (an MPI_Ibarrier, polled at most the
  /// timeout). When they do not come — a rank is stopped, gone or stuck — MPI_Finalize could wait
  /// for them forever, so this rank says so on stderr and ends the job with MPI_Abort instead.
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!owner_ || finalized) return;
    try {
      (void)detail::collective(
          0, [](int&, MPI_Request& request) { MPI_Ibarrier(MPI_COMM_WORLD, &request); }, MPI_COMM_WORLD, options_,
          "the other ranks to end");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s; ending the job (MPI_Abort)\n", e.what());
      abort(1);
    }
    MPI_Finalize();
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  [[nodiscard]] static int rank(MPI_Comm comm = MPI_COMM_WORLD) {
    int r = 0;
    MPI_Comm_rank(comm, &r);
    return r;
  }
  [[nodiscard]] static int size(MPI_Comm comm = MPI_COMM_WORLD) {
    int s = 0;
    MPI_Comm_size(comm, &s);
    return s;
  }
  [[nodiscard]] const MpiOptions& options() const noexcept { return options_; }

  /// Ends every rank of the job at once (MPI_Abort on MPI_COMM_WORLD) with exit code `code`.
  [[noreturn]] static void abort(int code) {
    std::fflush(nullptr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; should an implementation return, still end
  }

  /// Call after `error` was reported (printed) on this rank. A TransportError means another rank
  /// is stopped, gone or stuck: no later collective or MPI_Finalize could complete, so this ends
  /// the job at once (abort(code)). Any other error returns: the program ends as usual, and the
  /// destructor waits for the other ranks (which, if the error was this rank's alone, time out
  /// waiting for it and abort) at most the timeout.
  void end_job_after(const std::exception& error, int code = 1) const {
    if (dynamic_cast<const TransportError*>(&error) != nullptr) abort(code);
  }

 private:
  MpiOptions options_;
  bool owner_ = false;
};

/// One setting of a run, its name and its value as text: {"--levels", "256"}.
using MpiSetting = std::pair<std::string, std::string>;

namespace detail {

inline std::vector<std::byte> encode_settings(std::span<const MpiSetting> settings) {
  std::vector<std::byte> out;
  for (const auto& [name, value] : settings) {
    checkpoint::put_string(out, name);
    checkpoint::put_string(out, value);
  }
  return out;
}

inline std::vector<MpiSetting> decode_settings(std::span<const std::byte> bytes) {
  std::vector<MpiSetting> settings;
  ByteReader in(bytes);
  while (in.remaining() > 0) {
    std::string name = checkpoint::get_string(in);
    settings.emplace_back(std::move(name), checkpoint::get_string(in));
  }
  return settings;
}

/// Every rank's `bytes`, in rank order, on every rank of `comm` (bounded MPI_Iallgather of the
/// sizes, then MPI_Iallgatherv of the bytes).
inline std::vector<std::vector<std::byte>> all_gather_bytes(std::vector<std::byte> bytes, MPI_Comm comm,
                                                            const MpiOptions& options, const std::string& what) {
  int size = 0;
  MPI_Comm_size(comm, &size);
  struct Sizes {
    int mine = 0;
    std::vector<int> all;
  };
  const auto sizes = collective(
      Sizes{mpi_count(bytes.size(), "all_gather_bytes"), std::vector<int>(static_cast<std::size_t>(size))},
      [comm](Sizes& s, MPI_Request& request) { MPI_Iallgather(&s.mine, 1, MPI_INT, s.all.data(), 1, MPI_INT, comm, &request); },
      comm, options, what);
  std::vector<int> offsets(sizes.all.size());
  std::size_t total = 0;
  for (std::size_t r = 0; r < offsets.size(); ++r) {
    offsets[r] = mpi_count(total, "all_gather_bytes");
    total += static_cast<std::size_t>(sizes.all[r]);
  }
  struct Buffers {
    std::vector<std::byte> mine, all;
    std::vector<int> sizes, offsets;
  };
  const auto gathered = collective(
      Buffers{std::move(bytes), std::vector<std::byte>(total), sizes.all, offsets},
      [comm](Buffers& b, MPI_Request& request) {
        MPI_Iallgatherv(b.mine.data(), static_cast<int>(b.mine.size()), MPI_BYTE, b.all.data(), b.sizes.data(),
                        b.offsets.data(), MPI_BYTE, comm, &request);
      },
      comm, options, what);
  std::vector<std::vector<std::byte>> each;
  for (std::size_t r = 0; r < offsets.size(); ++r) {
    const auto first = gathered.all.begin() + offsets[r];
    each.emplace_back(first, first + sizes.all[r]);
  }
  return each;
}

/// "ranks disagree on <name>: rank a has X, rank b has Y[, ...]" for the first setting (in rank
/// 0's order, then any only other ranks have) whose value is not the same on every rank — each
/// distinct value named with the lowest rank holding it; "" when every rank has the same list.
inline std::string first_disagreement(const std::vector<std::vector<MpiSetting>>& by_rank) {
  std::vector<std::string> names;
  for (const auto& settings : by_rank)
    for (const auto& setting : settings)
      if (std::find(names.begin(), names.end(), setting.first) == names.end()) names.push_back(setting.first);
  auto value_of = [&](std::size_t rank, const std::string& name) -> std::string {
    for (const auto& [n, v] : by_rank[rank])
      if (n == name) return v;
    return "no " + name;
  };
  for (const std::string& name : names) {
    std::vector<std::string> values;  // distinct, in order of the lowest rank holding each
    std::string message = "ranks disagree on " + name + ": ";
    for (std::size_t rank = 0; rank < by_rank.size(); ++rank) {
      std::string value = value_of(rank, name);
      if (std::find(values.begin(), values.end(), value) != values.end()) continue;
      message += (values.empty() ? "" : ", ") + ("rank " + std::to_string(rank) + " has " + value);
      values.push_back(std::move(value));
    }
    if (values.size() > 1) return message;
  }
  return "";
}

}  // namespace detail

/// Collective: checks that every rank of `comm` runs with the same settings, so that ranks given
/// different flags stop at start-up instead of hanging (a different number of collective calls) or
/// silently computing different things. A 64-bit hash (FNV-1a) of each rank's list is compared
/// first, in one small reduction; only when the hashes differ are the lists gathered, to name the
/// difference — the same message on every rank.
///
/// @param settings  this rank's settings, in the order to report them (names as the user knows them)
/// @throws ConfigError on every rank when they differ: "ranks disagree on --levels: rank 0 has 256,
///         rank 2 has 16" — the first setting that differs, each distinct value with the lowest rank
///         holding it (a setting a rank lacks counts as "no <name>")
/// @throws TransportError when a rank does not take part within options.timeout
inline void require_same_settings(std::span<const MpiSetting> settings, MPI_Comm comm = MPI_COMM_WORLD,
                                  const MpiOptions& options = {}) {
  std::vector<std::byte> mine = detail::encode_settings(settings);
  const std::string what = "the other ranks to compare the run's settings";
  const auto [low, high] = detail::extremes(checkpoint::fnv1a64(mine), comm, options, what);
  if (low == high) return;
  std::vector<std::vector<MpiSetting>> by_rank;
  for (const auto& bytes : detail::all_gather_bytes(std::move(mine), comm, options, what))
    by_rank.push_back(detail::decode_settings(bytes));
  const std::string disagreement = detail::first_disagreement(by_rank);
  // Equal lists with different hashes cannot happen; equal hashes of different lists (2^-64) pass.
  detail::require(disagreement.empty(), disagreement);
}

/// Σ over the ranks of `comm` of `values`, element by element, on every rank (MPI_Iallreduce,
/// bounded by options.timeout). Collective: every rank passes as many values.
/// @throws TransportError when a rank does not take part within options.timeout
template <class T>
std::vector<T> mpi_sum(std::vector<T> values, MPI_Comm comm, const MpiOptions& options, const std::string& what) {
  struct Buffers {
    std::vector<T> in, out;
  };
  const int count = detail::mpi_count(values.size(), "mpi_sum");
  auto sums = detail::collective(
      Buffers{std::move(values), std::vector<T>(static_cast<std::size_t>(count))},
      [&](Buffers& b, MPI_Request& request) {
        MPI_Iallreduce(b.in.data(), b.out.data(), count, detail::mpi_type<T>(), MPI_SUM, comm, &request);
      },
      comm, options, what);
  return std::move(sums.out);
}

/// Every rank's `values` (as many on each), rank after rank, on rank `root`; empty elsewhere
/// (MPI_Igather, bounded by options.timeout). Collective.
/// @throws TransportError when a rank does not take part within options.timeout
template <class T>
std::vector<T> mpi_gather(std::span<const T> values, int root, MPI_Comm comm, const MpiOptions& options,
                          const std::string& what) {
  int rank = 0, size = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  struct Buffers {
    std::vector<T> in, out;
  };
  const int count = detail::mpi_count(values.size(), "mpi_gather");
  auto gathered = detail::collective(
      Buffers{std::vector<T>(values.begin(), values.end()),
              std::vector<T>(rank == root ? values.size() * static_cast<std::size_t>(size) : 0)},
      [&](Buffers& b, MPI_Request& request) {
        MPI_Igather(b.in.data(), count, detail::mpi_type<T>(), b.out.data(), count, detail::mpi_type<T>(), root, comm,
                    &request);
      },
      comm, options, what);
  return std::move(gathered.out);
}

namespace detail {

/// Receives one waiting message from `source` (or MPI_ANY_SOURCE) with `tag`, whatever its size
/// (MPI_Improbe + MPI_Get_count + MPI_Mrecv), into `into`. Returns the sender's rank, or −1 when
/// no such message has arrived (nothing is received then).
inline int try_receive(MPI_Comm comm, int source, int tag, std::vector<std::byte>& into) {
  int flag = 0;
  MPI_Message handle;
  MPI_Status status;
  MPI_Improbe(source, tag, comm, &flag, &handle, &status);
  if (!flag) return -1;
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  into.resize(static_cast<std::size_t>(count));
  MPI_Mrecv(into.data(), count, MPI_BYTE, &handle, MPI_STATUS_IGNORE);
  return status.MPI_SOURCE;
}

/// Non-blocking sends that own their bytes until MPI is done with them (MPI_Isend), so a sender
/// never waits for its receivers and the caller's buffer is its own again as soon as post()
/// returns. The bytes of completed sends are recycled by buffer().
class SendQueue {
 public:
  SendQueue() = default;
  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;

  /// An empty buffer for the next post(): the storage of a completed send when there is one.
  std::vector<std::byte> buffer() {
    if (spare_.empty()) return {};
    std::vector<std::byte> bytes = std::move(spare_.back());
    spare_.pop_back();
    bytes.clear();
    return bytes;
  }

  /// Sends `bytes` to every rank of `destinations` with `tag`: one buffer, one MPI_Isend each.
  void post(MPI_Comm comm, std::span<const int> destinations, int tag, std::vector<std::byte> bytes) {
    reap();
    const int count = mpi_count(bytes.size(), "a message's bytes");
    Pending& p = pending_.emplace_back();
    p.bytes = std::move(bytes);  // a moved vector keeps its storage: the pointers MPI holds stay valid
    p.requests.resize(destinations.size(), MPI_REQUEST_NULL);
    for (std::size_t k = 0; k < destinations.size(); ++k)
      MPI_Isend(p.bytes.data(), count, MPI_BYTE, destinations[k], tag, comm, &p.requests[k]);
  }
  void post(MPI_Comm comm, int destination, int tag, std::vector<std::byte> bytes) {
    post(comm, std::span<const int>(&destination, 1), tag, std::move(bytes));
  }

  /// Forgets the sends that have completed, keeping their storage for buffer() (and lets MPI
  /// progress the others).
  void reap() {
    std::erase_if(pending_, [this](Pending& p) {
      int flag = 0;
      MPI_Testall(static_cast<int>(p.requests.size()), p.requests.data(), &flag, MPI_STATUSES_IGNORE);
      if (flag && spare_.size() < kSpareBuffers) spare_.push_back(std::move(p.bytes));
      return flag != 0;
    });
  }

  [[nodiscard]] bool empty() const noexcept { return pending_.empty(); }

  /// Waits, at most options.timeout, for every send to complete; abandons the ones still pending
  /// then (their receiver is stopped, gone or stuck).
  void complete(const MpiOptions& options) noexcept {
    try {
      poll_until(
          options,
          [&] {
            reap();
            return pending_.empty() ? Poll::done : Poll::waiting;
          },
          [] { return std::string("a rank"); }, [] { return std::string("its sends"); });
    } catch (...) {
      abandon_all();
    }
  }

  /// Gives up every pending send at once: the request is freed (the send may still complete) and
  /// the bytes are kept until the program ends, since MPI may still read them.
  void abandon_all() noexcept {
    for (Pending& p : pending_) {
      for (MPI_Request& request : p.requests)
        if (request != MPI_REQUEST_NULL) MPI_Request_free(&request);
      try {
        abandon(std::make_shared<std::vector<std::byte>>(std::move(p.bytes)));
      } catch (...) {
        (void)new std::vector<std::byte>(std::move(p.bytes));  // out of memory: leak them instead
      }
    }
    pending_.clear();
  }

 private:
  static constexpr std::size_t kSpareBuffers = 2;  // a neighbour is at most one exchange ahead
  struct Pending {
    std::vector<std::byte> bytes;
    std::vector<MPI_Request> requests;  // one per destination
  };
  std::vector<Pending> pending_;
  std::vector<std::vector<std::byte>> spare_;
};

}  // namespace detail

/// This process's end of an MPI network; satisfies the Transport concept.
class MpiTransport {
 public:
  static constexpr int kTagWindow = 32768;  // ≤ the MPI standard's guaranteed MPI_TAG_UB

  /// Collective: every rank of `comm` must construct its transport over the same topology.
  /// @throws ConfigError on every rank when the communicator size or the ranks' topologies differ
  /// @throws TransportError when a rank does not take part within options.timeout
  MpiTransport(const Topology& topology, MPI_Comm comm = MPI_COMM_WORLD, MpiOptions options = {})
      : comm_(comm), options_(options), uncaught_at_start_(std::uncaught_exceptions()) {
    MPI_Comm_rank(comm_, &rank_);
    int size = 0;
    MPI_Comm_size(comm_, &size);
    detail::require(size == topology.size(), "MpiTransport: the communicator has " + std::to_string(size) +
                                                 " ranks but the topology " + topology.name() + " has " +
                                                 std::to_string(topology.size()) + " nodes");
    // Every rank must hold the same graph and weights: compare fingerprints collectively.
    const auto [low, high] =
        detail::extremes(topology.fingerprint(), comm_, options_, "the other ranks to compare topologies");
    detail::require(low == high, "MpiTransport: the ranks hold different topologies (rank " + std::to_string(rank_) +
                                     " has " + topology.name() + "); every rank must build the same one");
    for (const Edge& e : topology.neighbors(rank_)) neighbors_.push_back(e.node);
    received_.resize(neighbors_.size());
  }
  MpiTransport(const MpiTransport&) = delete;
  MpiTransport& operator=(const MpiTransport&) = delete;
  /// Waits, at most the timeout, for the last sends to be received — not at all while an
  /// exception unwinds the stack (the run failed; its receivers may be stopped or gone).
  ~MpiTransport() {
    if (std::uncaught_exceptions() > uncaught_at_start_) sends_.abandon_all();
    else sends_.complete(options_);
  }

  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] int degree() const noexcept { return static_cast<int>(neighbors_.size()); }
  /// The neighbours' ranks, in topology-neighbour order (the order of collect()'s inbox).
  [[nodiscard]] std::vector<int> neighbor_ranks() const { return neighbors_; }

  /// Sends a copy of `message` to every neighbour without waiting; `message` may change or go as
  /// soon as this returns.
  void post(long round, std::span<const std::byte> message) {
    std::vector<std::byte> bytes = sends_.buffer();
    bytes.assign(message.begin(), message.end());
    sends_.post(comm_, neighbors_, tag(round), std::move(bytes));
  }

  /// @throws TransportError "rank r timed out after T s waiting for round t from neighbour (rank) j"
  void collect(long round, std::vector<std::span<const std::byte>>& inbox) {
    inbox.resize(neighbors_.size());
    std::vector<bool> done(neighbors_.size(), false);
    std::size_t remaining = neighbors_.size();
    detail::poll_until(
        options_,
        [&] {
          bool progressed = false;
          for (std::size_t k = 0; k < neighbors_.size(); ++k) {
            if (done[k] || detail::try_receive(comm_, neighbors_[k], tag(round), received_[k]) < 0) continue;
            inbox[k] = std::span<const std::byte>(received_[k]);
            done[k] = true;
            --remaining;
            progressed = true;
          }
          return remaining == 0 ? detail::Poll::done : progressed ? detail::Poll::progressed : detail::Poll::waiting;
        },
        [&] { return "rank " + std::to_string(rank_); },
        [&] {
          std::size_t k = 0;
          while (done[k]) ++k;
          return "round " + std::to_string(round) + " from neighbour (rank) " + std::to_string(neighbors_[k]);
        });
  }

  /// Sends a copy of `message` to neighbour `peer` only (PeerTransport), without waiting.
  /// @throws ConfigError when peer is not a neighbour in the transport's topology
  void post_to(long round, int peer, std::span<const std::byte> message) {
    (void)slot_of(peer);
    std::vector<std::byte> bytes = sends_.buffer();
    bytes.assign(message.begin(), message.end());
    sends_.post(comm_, peer, tag(round), std::move(bytes));
  }

  /// Receives neighbour `peer`'s round-`round` message (PeerTransport); the span stays valid until
  /// the next collect_from from that peer or the next collect.
  /// @throws TransportError "rank r timed out after T s waiting for round t from neighbour (rank) j"
  [[nodiscard]] std::span<const std::byte> collect_from(long round, int peer) {
    const std::size_t k = slot_of(peer);
    detail::poll_until(
        options_,
        [&] {
          return detail::try_receive(comm_, peer, tag(round), received_[k]) < 0 ? detail::Poll::waiting
                                                                                  : detail::Poll::done;
        },
        [&] { return "rank " + std::to_string(rank_); },
        [&] { return "round " + std::to_string(round) + " from neighbour (rank) " + std::to_string(peer); });
    return std::span<const std::byte>(received_[k]);
  }

  /// Checks, collectively, that every rank's model has dimension d; ConfigError naming both extremes.
  /// @throws TransportError when a rank does not take part within the timeout
  void check_same_dimension(std::size_t d) const {
    detail::require_same_dimension("MpiTransport: the ranks' models", d, comm_, options_);
  }

  [[nodiscard]] MPI_Comm communicator() const noexcept { return comm_; }
  [[nodiscard]] const MpiOptions& options() const noexcept { return options_; }

 private:
  static int tag(long round) noexcept { return static_cast<int>(round % kTagWindow); }
  /// The index of `peer` in this rank's neighbour list.
  [[nodiscard]] std::size_t slot_of(int peer) const {
    for (std::size_t k = 0; k < neighbors_.size(); ++k)
      if (neighbors_[k] == peer) return k;
    throw ConfigError("MpiTransport: rank " + std::to_string(peer) + " is not a neighbour of rank " +
                      std::to_string(rank_));
  }

  MPI_Comm comm_;
  MpiOptions options_;
  int uncaught_at_start_;
  int rank_ = 0;
  std::vector<int> neighbors_;
  detail::SendQueue sends_;
  std::vector<std::vector<std::byte>> received_;  // keeps inbox spans alive until the next collect
};

namespace detail {

/// A duplicate of the caller's communicator (MPI_Comm_idup, bounded by the timeout), so that a
/// channel's messages can never match the user's own traffic or an MpiTransport's tags; freed on
/// destruction.
class DuplicateComm {
 public:
  DuplicateComm(MPI_Comm comm, const MpiOptions& options)
      : comm_(collective(
            MPI_Comm{MPI_COMM_NULL}, [comm](MPI_Comm& copy, MPI_Request& request) { MPI_Comm_idup(comm, &copy, &request); },
            comm, options, "the other ranks to create the channel")) {}
  /// Frees the duplicate — unless a collective on it was abandoned after a timeout.
  ~DuplicateComm() {
    if (comm_ != MPI_COMM_NULL && !has_abandoned_collective(comm_)) MPI_Comm_free(&comm_);
  }
  DuplicateComm(const DuplicateComm&) = delete;
  DuplicateComm& operator=(const DuplicateComm&) = delete;
  [[nodiscard]] MPI_Comm get() const noexcept { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

inline void put_doubles(std::vector<std::byte>& out, const std::vector<double>& values) {
  for (double v : values) put_le(out, v);
}

inline void get_doubles(ByteReader& in, std::size_t n, std::vector<double>& values) {
  values.resize(n);
  for (double& v : values) v = in.get_le<double>();
}

}  // namespace detail

namespace compositional {

/// The MasterWorkerChannel of AsyVRSCDistributed over MPI: rank 0 of the communicator is the
/// master, ranks 1..P−1 are workers 0..P−2 (so workers() = P − 1; P ≥ 2).
///
/// The mapping is the one master_worker.hpp describes, on a duplicate of the caller's
/// communicator (so no tag can clash with the user's traffic or an MpiTransport):
///
///   send_model(w, m)    MPI_Isend to rank w+1, tag kModelTag:  [epoch, version, snapshot length,
///                       end = 0] (uint64, little-endian), then x and the snapshot (doubles)
///   pull_model(w, m)    receive from rank 0, tag kModelTag; every model already waiting is read and
///                       only the newest kept (an older pending snapshot of the same epoch is kept
///                       when the newer model carries none), as InProcessChannel does
///   push_update(u)      MPI_Isend to rank 0, tag kUpdateTag: [epoch, version, end = 0], then v
///   receive_update(u)   receive from MPI_ANY_SOURCE, tag kUpdateTag; u.worker = sender rank − 1
///   close()             send an "end" (the header with end = 1) — the master to every worker, a
///                       worker to the master — then read and discard until the peer's "end" has
///                       arrived, so no message is left in flight when the ranks move on
///
/// A worker receiving "end" returns false from pull_model and answers with its own "end"; an "end"
/// from a worker ends the run on the master (receive_update returns false), as a worker's close()
/// does in-process. Every wait polls with MPI_Improbe, yielding and then sleeping between probes
/// (decopt::detail::poll_until, the loop of MpiTransport) and throws TransportError naming the rank and what it waited for after
/// MpiOptions::timeout. close() never throws: a peer that does not answer within the timeout is
/// given up on. The constructor is collective: it refuses a communicator of one rank, and ranks
/// whose problem dimensions differ, with a ConfigError on every rank.
///
/// One thread per rank uses the channel (MPI_THREAD_FUNNELED is enough).
class MpiMasterWorkerChannel {
 public:
  static constexpr int kModelTag = 1;
  static constexpr int kUpdateTag = 2;

  /// @param dimension the problem dimension d on this rank (every rank must pass the same)
  /// @throws ConfigError on every rank for a communicator of one rank or differing dimensions
  explicit MpiMasterWorkerChannel(std::size_t dimension, MPI_Comm comm = MPI_COMM_WORLD, MpiOptions options = {})
      : comm_(comm, options), options_(options), dimension_(dimension) {
    MPI_Comm_rank(comm_.get(), &rank_);
    MPI_Comm_size(comm_.get(), &size_);
    decopt::detail::require(size_ >= 2, "MpiMasterWorkerChannel: the communicator has " + std::to_string(size_) +
                                            " rank; AsyVRSC-Distributed needs at least 2 ranks (rank 0 is "
                                            "the master, ranks 1..P-1 are the workers)");
    decopt::detail::require_same_dimension("MpiMasterWorkerChannel: the ranks' problems", dimension_, comm_.get(),
                                           options_);
    worker_ended_.assign(static_cast<std::size_t>(workers()), false);
  }
  MpiMasterWorkerChannel(const MpiMasterWorkerChannel&) = delete;
  MpiMasterWorkerChannel& operator=(const MpiMasterWorkerChannel&) = delete;
  /// Closes the channel (if not yet closed) and completes this rank's sends, each at most the timeout.
  ~MpiMasterWorkerChannel() {
    close();
    sends_.complete(options_);
  }

  [[nodiscard]] int workers() const noexcept { return size_ - 1; }
  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] bool is_master() const noexcept { return rank_ == 0; }
  /// This rank's worker id (rank − 1), −1 on the master.
  [[nodiscard]] int worker() const noexcept { return rank_ - 1; }
  [[nodiscard]] std::size_t dimension() const noexcept { return dimension_; }
  /// The duplicated communicator the channel's messages travel on.
  [[nodiscard]] MPI_Comm communicator() const noexcept { return comm_.get(); }
  [[nodiscard]] bool closed() const noexcept { return closed_; }

  /// Master: sends `model` to `worker` without waiting for it to be received (dropped once closed).
  void send_model(int worker_id, const ModelMessage& model) {
    require_role(true, "send_model");
    decopt::detail::require(worker_id >= 0 && worker_id < workers(),
                            "MpiMasterWorkerChannel: worker id " + std::to_string(worker_id) + " out of range (" +
                                std::to_string(workers()) + " workers)");
    require_size("send_model: the model", model.x.size());
    if (closed_) return;
    std::vector<std::byte> out = sends_.buffer();
    out.reserve(kModelHeader + 8 * (model.x.size() + model.snapshot.size()));
    put_header(out, {model.epoch, model.version, model.snapshot.size(), 0});
    decopt::detail::put_doubles(out, model.x);
    decopt::detail::put_doubles(out, model.snapshot);
    sends_.post(comm_.get(), worker_id + 1, kModelTag, std::move(out));
  }

  /// Worker: waits for the next model (the newest of those waiting); false once the master ended the run.
  /// @throws TransportError after the timeout; DecodeError for a malformed message
  bool pull_model(int worker_id, ModelMessage& model) {
    require_own_worker("pull_model", worker_id);
    if (closed_) return false;
    bool have = false;  // every model already waiting is read; the newest counts
    receive_until(
        0, kModelTag,
        [&](int) {
          if (!merge_model(model, have)) return true;  // the master's "end"
          have = true;
          return false;  // read on: a newer model may be waiting
        },
        [&] { return have; }, "a model from the master (rank 0)");
    if (peer_ended_) close();  // answers the master's "end" with ours
    return !closed_;
  }

  /// Worker: sends `update` to the master without waiting for it to be received (dropped once closed).
  void push_update(const UpdateMessage& update) {
    require_own_worker("push_update", update.worker);
    require_size("push_update: the direction", update.direction.size());
    if (closed_) return;
    std::vector<std::byte> out = sends_.buffer();
    out.reserve(kUpdateHeader + 8 * update.direction.size());
    put_header(out, {update.epoch, update.version, 0});
    decopt::detail::put_doubles(out, update.direction);
    sends_.post(comm_.get(), 0, kUpdateTag, std::move(out));
  }

  /// Master: waits for the next update from any worker; false once closed or a worker ended the run.
  /// @throws TransportError after the timeout; DecodeError for a malformed message
  bool receive_update(UpdateMessage& update) {
    require_role(true, "receive_update");
    if (closed_) return false;
    bool ended = false;
    receive_until(
        MPI_ANY_SOURCE, kUpdateTag,
        [&](int sender) {
          ended = !decode_update(sender, update);
          return true;
        },
        [] { return false; }, "an update from any worker");
    if (ended) close();  // a worker quit: end the run for everyone
    return !closed_;
  }

  /// Ends the run: sends this rank's "end" and reads (discarding) until the peers' "end" arrived.
  /// Idempotent; never throws (a peer silent for longer than the timeout is given up on).
  void close() noexcept {
    if (closed_) return;
    closed_ = true;
    try {
      if (is_master()) {
        for (int w = 0; w < workers(); ++w) send_end(w + 1, kModelTag);
        UpdateMessage discard;
        drain(kUpdateTag, [&] { return std::find(worker_ended_.begin(), worker_ended_.end(), false) ==
                                       worker_ended_.end(); },
              [&](int source) { decode_update(source, discard); });
      } else {
        send_end(0, kUpdateTag);
        ModelMessage discard;
        drain(kModelTag, [&] { return peer_ended_; }, [&](int) { merge_model(discard, false); });
      }
    } catch (...) {
      // A peer did not answer within the timeout, or sent garbage: nothing more to wait for.
    }
  }

 private:
  static constexpr std::size_t kModelHeader = 4 * sizeof(std::uint64_t);   // epoch, version, snapshot length, end
  static constexpr std::size_t kUpdateHeader = 3 * sizeof(std::uint64_t);  // epoch, version, end

  static void put_header(std::vector<std::byte>& out, std::initializer_list<std::uint64_t> fields) {
    for (std::uint64_t f : fields) put_le(out, f);
  }
  /// The "end" message: a model header (to a worker) or an update header (to the master) with end = 1.
  void send_end(int destination, int tag) {
    std::vector<std::byte> out = sends_.buffer();
    out.reserve(kModelHeader);
    if (tag == kModelTag) put_header(out, {0, 0, 0, 1});
    else put_header(out, {0, 0, 1});
    sends_.post(comm_.get(), destination, tag, std::move(out));
  }

  /// Decodes inbox_ (a model message) into `model`: replaces it, or, when `merge` and the message
  /// has no snapshot and the same epoch, only its version and x. Returns false for an "end".
  bool merge_model(ModelMessage& model, bool merge) {
    ByteReader in(inbox_);
    const auto epoch = in.get_le<std::uint64_t>();
    const auto version = in.get_le<std::uint64_t>();
    const auto snapshot_length = in.get_le<std::uint64_t>();
    const auto end = in.get_le<std::uint64_t>();
    if (end != 0) {
      peer_ended_ = true;
      return false;
    }
    decopt::detail::require_decodable(
        snapshot_length <= (inbox_.size() - kModelHeader) / 8 &&
            inbox_.size() == kModelHeader + 8 * (dimension_ + snapshot_length),
        "MpiMasterWorkerChannel: model message of the wrong size");
    const bool keep_snapshot = merge && snapshot_length == 0 && model.epoch == epoch;
    model.epoch = epoch;
    model.version = version;
    decopt::detail::get_doubles(in, dimension_, model.x);
    if (!keep_snapshot) decopt::detail::get_doubles(in, snapshot_length, model.snapshot);
    return true;
  }

  /// Decodes inbox_ (an update from rank `source`) into `update`. Returns false for an "end".
  bool decode_update(int source, UpdateMessage& update) {
    ByteReader in(inbox_);
    update.worker = source - 1;
    update.epoch = in.get_le<std::uint64_t>();
    update.version = in.get_le<std::uint64_t>();
    if (in.get_le<std::uint64_t>() != 0) {
      worker_ended_[static_cast<std::size_t>(source - 1)] = true;
      return false;
    }
    decopt::detail::require_decodable(inbox_.size() == kUpdateHeader + 8 * dimension_,
                                      "MpiMasterWorkerChannel: update message of the wrong size");
    decopt::detail::get_doubles(in, dimension_, update.direction);
    return true;
  }

  /// Receives the messages with `tag` from `source` (or MPI_ANY_SOURCE), handing each to
  /// take(sender), until take returns true or, with no message waiting, finished() does.
  /// @throws TransportError after the timeout
  template <class Take, class Finished>
  void receive_until(int source, int tag, Take take, Finished finished, const char* what) {
    decopt::detail::poll_until(
        options_,
        [&] {
          sends_.reap();
          const int sender = decopt::detail::try_receive(comm_.get(), source, tag, inbox_);
          if (sender < 0) return finished() ? decopt::detail::Poll::done : decopt::detail::Poll::waiting;
          return take(sender) ? decopt::detail::Poll::done : decopt::detail::Poll::progressed;
        },
        [&] { return who(); }, [what] { return std::string(what); });
  }

  /// Receives and hands to `take` every message with `tag` until `finished()`, at most the timeout.
  template <class Finished, class Take>
  void drain(int tag, Finished finished, Take take) {
    receive_until(
        MPI_ANY_SOURCE, tag,
        [&](int sender) {
          take(sender);
          return finished();
        },
        finished, "the peers' end of the run");
  }

  void require_role(bool master, const char* call) const {
    decopt::detail::require(is_master() == master, std::string("MpiMasterWorkerChannel: ") + call + " is the " +
                                                       (master ? "master's (rank 0)" : "workers' (ranks 1..P-1)") +
                                                       " call; this is rank " + std::to_string(rank_));
  }
  /// A worker's call must name this rank's worker id.
  void require_own_worker(const char* call, int worker_id) const {
    require_role(false, call);
    decopt::detail::require(worker_id == worker(), std::string("MpiMasterWorkerChannel: ") + call + " for worker " +
                                                       std::to_string(worker_id) + " on rank " + std::to_string(rank_) +
                                                       ", which is worker " + std::to_string(worker()));
  }
  void require_size(const char* what, std::size_t n) const {
    decopt::detail::require(n == dimension_, std::string("MpiMasterWorkerChannel: ") + what + " has " +
                                                 std::to_string(n) + " entries, expected " +
                                                 std::to_string(dimension_));
  }
  [[nodiscard]] std::string who() const {
    return "rank " + std::to_string(rank_) + (is_master() ? " (master)" : " (worker " + std::to_string(worker()) + ")");
  }

  decopt::detail::DuplicateComm comm_;  // first: freed last, after the sends completed
  MpiOptions options_;
  std::size_t dimension_;
  int rank_ = 0;
  int size_ = 0;
  decopt::detail::SendQueue sends_;
  std::vector<std::byte> inbox_;
  std::vector<bool> worker_ended_;  // master: the workers whose "end" has arrived
  bool peer_ended_ = false;         // worker: the master's "end" has arrived
  bool closed_ = false;
};

static_assert(MasterWorkerChannel<MpiMasterWorkerChannel>);

namespace detail {

/// What an exception was, so that the ranks that did not fail can throw the same kind.
enum class ErrorKind : int { config = 1, decode, divergence, transport, other };

struct RemoteError {
  ErrorKind kind = ErrorKind::other;
  int epoch = 0;  // DivergenceError only
  std::string what;
};

inline RemoteError describe_error(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const ConfigError& e) {
    return {ErrorKind::config, 0, e.what()};
  } catch (const DecodeError& e) {
    return {ErrorKind::decode, 0, e.what()};
  } catch (const DivergenceError& e) {
    return {ErrorKind::divergence, e.epoch, e.what()};
  } catch (const TransportError& e) {
    return {ErrorKind::transport, 0, e.what()};
  } catch (const std::exception& e) {
    return {ErrorKind::other, 0, e.what()};
  } catch (...) {
    return {ErrorKind::other, 0, "an exception that is not a std::exception"};
  }
}

/// Throws, on a rank that did not fail, the kind of error rank `source` reported.
[[noreturn]] inline void throw_remote(const RemoteError& e, int source) {
  auto without = [&](const Error& empty) {  // the prefix the constructor adds again
    const std::string_view prefix = empty.what();
    const std::string_view what = e.what;
    return "rank " + std::to_string(source) + " failed: " +
           std::string(what.starts_with(prefix) ? what.substr(prefix.size()) : what);
  };
  switch (e.kind) {
    case ErrorKind::config: throw ConfigError(without(ConfigError("")));
    case ErrorKind::decode: throw DecodeError(without(DecodeError("")));
    case ErrorKind::divergence: throw DivergenceError("rank " + std::to_string(source) + " failed: " + e.what, e.epoch);
    case ErrorKind::transport: throw TransportError(without(TransportError("")));
    case ErrorKind::other: break;
  }
  throw Error("rank " + std::to_string(source) + " failed: " + e.what);
}

/// Collective: if any rank of `comm` failed, every rank throws — the failed rank its own error,
/// the others the same kind with the message of the lowest failed rank. Every step waits at most
/// options.timeout for the other ranks (a rank stuck elsewhere gives a TransportError, or this
/// rank's own error, instead of a hang; the run is then broken and the program should end with
/// MpiSession::end_job_after).
inline void agree_on_failure(const std::exception_ptr& error, MPI_Comm comm, const MpiOptions& options) {
  int rank = 0, size = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const std::string what = "the other ranks to finish the run";
  RemoteError remote;
  int source = size;
  try {
    struct Lowest {
      int mine, all;
    };
    source = decopt::detail::collective(
                 Lowest{error ? rank : size, size},
                 [comm](Lowest& l, MPI_Request& request) {
                   MPI_Iallreduce(&l.mine, &l.all, 1, MPI_INT, MPI_MIN, comm, &request);
                 },
                 comm, options, what)
                 .all;
    if (source == size) return;
    std::vector<std::byte> bytes;
    if (rank == source) {
      remote = describe_error(error);
      put_le(bytes, static_cast<std::int32_t>(remote.kind));
      put_le(bytes, static_cast<std::int32_t>(remote.epoch));
      checkpoint::put_string(bytes, remote.what);
    }
    bytes = decopt::detail::broadcast_bytes(std::move(bytes), source, comm, options, what);
    ByteReader in(bytes);
    remote.kind = static_cast<ErrorKind>(in.get_le<std::int32_t>());
    remote.epoch = in.get_le<std::int32_t>();
    remote.what = checkpoint::get_string(in);
  } catch (const TransportError&) {
    if (error) std::rethrow_exception(error);
    throw;
  }
  if (error) std::rethrow_exception(error);
  throw_remote(remote, source);
}

/// Rank `root`'s x and result (every field and the whole history) on every rank of `comm`
/// (collective, bounded by options.timeout; x has the same size on every rank).
inline void broadcast(CompositionalResult& result, VectorRef x, int root, MPI_Comm comm, const MpiOptions& options) {
  std::vector<std::byte> bytes;
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == root) {
    put_le(bytes, static_cast<std::int64_t>(result.epochs));
    put_le(bytes, static_cast<std::uint8_t>(result.converged));
    for (double v : {result.objective, result.suboptimality, result.seconds}) put_le(bytes, v);
    for (std::uint64_t v : {result.updates, result.dropped_updates, result.max_staleness, std::uint64_t{result.history.size()}})
      put_le(bytes, v);
    for (const EpochRecord& h : result.history) {
      put_le(bytes, static_cast<std::int64_t>(h.epoch));
      for (double v : {h.objective, h.suboptimality, h.gradient_norm, h.seconds}) put_le(bytes, v);
    }
    for (Eigen::Index k = 0; k < x.size(); ++k) put_le(bytes, x[k]);
  }
  bytes = decopt::detail::broadcast_bytes(std::move(bytes), root, comm, options, "rank " + std::to_string(root) + "'s result");
  if (rank == root) return;
  ByteReader in(bytes);
  result = {};
  result.epochs = static_cast<int>(in.get_le<std::int64_t>());
  result.converged = in.get_le<std::uint8_t>() != 0;
  for (double* v : {&result.objective, &result.suboptimality, &result.seconds}) *v = in.get_le<double>();
  for (std::uint64_t* v : {&result.updates, &result.dropped_updates, &result.max_staleness}) *v = in.get_le<std::uint64_t>();
  result.history.resize(in.get_le<std::uint64_t>());
  for (EpochRecord& h : result.history) {
    h.epoch = static_cast<int>(in.get_le<std::int64_t>());
    for (double* v : {&h.objective, &h.suboptimality, &h.gradient_norm, &h.seconds}) *v = in.get_le<double>();
  }
  for (Eigen::Index k = 0; k < x.size(); ++k) x[k] = in.get_le<double>();
}

}  // namespace detail

/// Runs `solver` under mpirun with one call on every rank of `comm`: rank 0 runs run_master on x,
/// every other rank run_worker (one worker per rank; solver.options().workers is not used), over
/// an MpiMasterWorkerChannel. Afterwards x and the returned result — every field and the history
/// — are rank 0's on every rank. Collective; every wait is bounded by options.timeout.
///
///   decopt::MpiSession mpi(argc, argv);
///   const PortfolioProblem problem;                       // the same problem on every rank
///   Vector x = Vector::Zero(problem.dimension());
///   auto r = decopt::compositional::optimize_mpi(AsyVRSCDistributed(o), problem, x, problem.optimal_value());
///
/// @throws on every rank, if any rank fails: ConfigError (one rank, differing dimensions, x of the
///         wrong size), DecodeError, DivergenceError, TransportError (a rank silent for longer than
///         options.timeout) — the failing rank its own exception, the others the same kind naming it.
template <class P>
CompositionalResult optimize_mpi(const AsyVRSCDistributed& solver, const P& problem, VectorRef x,
                                 std::optional<double> optimal_value = std::nullopt, MPI_Comm comm = MPI_COMM_WORLD,
                                 MpiOptions options = {}) {
  detail::check_compositional_problem<P>();
  CompositionalResult result;
  if constexpr (CompositionalProblem<P>) {
    MpiMasterWorkerChannel channel(static_cast<std::size_t>(problem.dimension()), comm, options);
    std::exception_ptr error;
    try {
      decopt::detail::require(x.size() == problem.dimension(),
                              "asyvrsc-distributed: x has " + std::to_string(x.size()) + " entries on rank " +
                                  std::to_string(channel.rank()) + ", the problem dimension is " +
                                  std::to_string(problem.dimension()));
      if (channel.is_master()) result = solver.run_master(problem, x, channel, optimal_value);
      else solver.run_worker(problem, channel, channel.worker());
    } catch (...) {
      error = std::current_exception();
      channel.close();
    }
    detail::agree_on_failure(error, channel.communicator(), options);
    detail::broadcast(result, x, 0, channel.communicator(), options);
  }
  return result;
}

}  // namespace compositional

using compositional::MpiMasterWorkerChannel;

}  // namespace decopt
