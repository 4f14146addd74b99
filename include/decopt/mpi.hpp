// decopt/mpi.hpp — MpiTransport: one MPI process per node, across machines; MpiMasterWorkerChannel
// and optimize_mpi: AsyVRSC-Distributed with one process per worker. Not part of the
// umbrella header (it needs MPI); link decopt::mpi.
//
// post() starts one non-blocking send of the message to every neighbour (MPI_Isend), tagged with
// the exchange number modulo a tag window; the previous exchange's sends are completed first, which
// is also when the optimizer may reuse their buffer. collect() receives one message per neighbour
// of that exchange whatever its size (MPI_Improbe + MPI_Get_count + MPI_Mrecv), in any arrival
// order, polling with a short sleep rather than spinning, and gives up after a timeout with a
// TransportError naming this rank, the neighbour and the round — a dead or silent neighbour never
// hangs the run. A neighbour is at most one exchange ahead, and MPI keeps messages between two
// ranks with one tag in order, so tags modulo the window never mix exchanges up.
// The constructor checks, collectively, that every rank holds the same topology (its fingerprint).
//
// MpiMasterWorkerChannel carries AsyVRSCDistributed (compositional/asyvrsc_distributed.hpp) over
// MPI: rank 0 is the master, every other rank a worker, with the two message kinds of
// master_worker.hpp — (epoch, version, snapshot length, end) + x and the epoch's snapshot, master
// to worker; (epoch, version, end) + the direction v, worker to master (MPI_ANY_SOURCE) — and an
// "end" handshake that leaves nothing in flight. optimize_mpi runs the whole solver with one call
// per rank and leaves rank 0's x and result on every rank. Its waits share MpiTransport's poll
// loop (detail::poll_until) and so its timeout.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <limits>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "decopt/compositional/asyvrsc_distributed.hpp"
#include "decopt/compositional/master_worker.hpp"
#include "decopt/core/bytes.hpp"
#include "decopt/core/error.hpp"
#include "decopt/topology/topology.hpp"
#include "decopt/transport/thread_network.hpp"  // TransportError

namespace decopt {

/// Options of MpiTransport, MpiMasterWorkerChannel and optimize_mpi.
struct MpiOptions {
  std::chrono::milliseconds timeout = std::chrono::seconds(60);  ///< wait for a neighbour before failing
  /// After this long without progress a wait sleeps poll_interval between probes; before it, it
  /// probes again at once, yielding the core (replies that come within microseconds are not
  /// delayed by a sleep, and oversubscribed ranks still get the processor).
  std::chrono::microseconds spin = std::chrono::microseconds(200);
  std::chrono::microseconds poll_interval = std::chrono::microseconds(50);
};

/// MPI_Init/MPI_Finalize for a program's lifetime (MPI_THREAD_FUNNELED).
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
      owner_ = true;
    }
  }
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owner_ && !finalized) MPI_Finalize();
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

 private:
  bool owner_ = false;
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
  auto last_progress = std::chrono::steady_clock::now();
  const auto deadline = last_progress + options.timeout;
  for (;;) {
    const Poll p = step();
    if (p == Poll::done) return;
    const auto now = std::chrono::steady_clock::now();
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

/// {min, max} of `value` over the ranks of `comm` (collective).
inline std::pair<std::uint64_t, std::uint64_t> extremes(std::uint64_t value, MPI_Comm comm) {
  std::uint64_t low = 0, high = 0;
  MPI_Allreduce(&value, &low, 1, MPI_UINT64_T, MPI_MIN, comm);
  MPI_Allreduce(&value, &high, 1, MPI_UINT64_T, MPI_MAX, comm);
  return {low, high};
}

/// Collectively checks that every rank of `comm` passes the same d; otherwise ConfigError on every
/// rank: "<what> have different dimensions (from low to high; rank r has d)".
inline void require_same_dimension(const std::string& what, std::size_t d, MPI_Comm comm) {
  const auto [low, high] = extremes(static_cast<std::uint64_t>(d), comm);
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  require(low == high, what + " have different dimensions (from " + std::to_string(low) + " to " +
                           std::to_string(high) + "; rank " + std::to_string(rank) + " has " +
                           std::to_string(d) + ")");
}

}  // namespace detail

/// This process's end of an MPI network; satisfies the Transport concept.
class MpiTransport {
 public:
  static constexpr int kTagWindow = 32768;  // ≤ the MPI standard's guaranteed MPI_TAG_UB

  MpiTransport(const Topology& topology, MPI_Comm comm = MPI_COMM_WORLD, MpiOptions options = {})
      : comm_(comm), options_(options) {
    MPI_Comm_rank(comm_, &rank_);
    int size = 0;
    MPI_Comm_size(comm_, &size);
    detail::require(size == topology.size(), "MpiTransport: the communicator has " + std::to_string(size) +
                                                 " ranks but the topology " + topology.name() + " has " +
                                                 std::to_string(topology.size()) + " nodes");
    // Every rank must hold the same graph and weights: compare fingerprints collectively.
    const auto [low, high] = detail::extremes(topology.fingerprint(), comm_);
    detail::require(low == high, "MpiTransport: the ranks hold different topologies (rank " + std::to_string(rank_) +
                                     " has " + topology.name() + "); every rank must build the same one");
    for (const Edge& e : topology.neighbors(rank_)) neighbors_.push_back(e.node);
    received_.resize(neighbors_.size());
  }
  MpiTransport(const MpiTransport&) = delete;
  MpiTransport& operator=(const MpiTransport&) = delete;
  ~MpiTransport() { complete_sends(); }

  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] int degree() const noexcept { return static_cast<int>(neighbors_.size()); }

  void post(long round, std::span<const std::byte> message) {
    complete_sends();
    detail::require(message.size() <= static_cast<std::size_t>(std::numeric_limits<int>::max()),
                    "MpiTransport: message larger than 2 GiB");
    for (int neighbor : neighbors_) {
      MPI_Request request;
      MPI_Isend(message.data(), static_cast<int>(message.size()), MPI_BYTE, neighbor, tag(round), comm_, &request);
      sends_.push_back(request);
    }
  }

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

  /// Checks, collectively, that every rank's model has dimension d; ConfigError naming both extremes.
  void check_same_dimension(std::size_t d) const {
    detail::require_same_dimension("MpiTransport: the ranks' models", d, comm_);
  }

  [[nodiscard]] MPI_Comm communicator() const noexcept { return comm_; }

 private:
  static int tag(long round) noexcept { return static_cast<int>(round % kTagWindow); }
  void complete_sends() {
    if (sends_.empty()) return;
    MPI_Waitall(static_cast<int>(sends_.size()), sends_.data(), MPI_STATUSES_IGNORE);
    sends_.clear();
  }

  MPI_Comm comm_;
  MpiOptions options_;
  int rank_ = 0;
  std::vector<int> neighbors_;
  std::vector<MPI_Request> sends_;
  std::vector<std::vector<std::byte>> received_;  // keeps inbox spans alive until the next collect
};

namespace detail {

/// A duplicate of the caller's communicator (MPI_Comm_dup), so that a channel's messages can never
/// match the user's own traffic or an MpiTransport's tags; freed on destruction.
class DuplicateComm {
 public:
  explicit DuplicateComm(MPI_Comm comm) { MPI_Comm_dup(comm, &comm_); }
  ~DuplicateComm() { MPI_Comm_free(&comm_); }
  DuplicateComm(const DuplicateComm&) = delete;
  DuplicateComm& operator=(const DuplicateComm&) = delete;
  [[nodiscard]] MPI_Comm get() const noexcept { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

/// Non-blocking sends that own their buffers until MPI is done with them (MPI_Isend), so a sender
/// never waits for its receiver to be ready.
class SendQueue {
 public:
  SendQueue() = default;
  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;

  void post(MPI_Comm comm, int destination, int tag, std::vector<std::byte> bytes) {
    reap();
    require(bytes.size() <= static_cast<std::size_t>(std::numeric_limits<int>::max()),
            "MpiMasterWorkerChannel: message larger than 2 GiB");
    Pending& p = pending_.emplace_back();
    p.bytes = std::move(bytes);
    MPI_Isend(p.bytes.data(), static_cast<int>(p.bytes.size()), MPI_BYTE, destination, tag, comm, &p.request);
  }

  /// Forgets the sends that have completed (and lets MPI progress the others).
  void reap() {
    pending_.remove_if([](Pending& p) {
      int flag = 0;
      MPI_Test(&p.request, &flag, MPI_STATUS_IGNORE);
      return flag != 0;
    });
  }

  /// Waits, at most options.timeout, for every send to complete. Sends still pending then (their
  /// receiver is gone or stuck) are abandoned: the request is freed and its buffer kept alive until
  /// the program exits, since MPI may still read it.
  void complete(const MpiOptions& options) noexcept {
    try {
      poll_until(
          options,
          [&] {
            reap();
            return pending_.empty() ? Poll::done : Poll::waiting;
          },
          [] { return std::string("MpiMasterWorkerChannel"); }, [] { return std::string("its sends"); });
    } catch (...) {
      for (Pending& p : pending_) MPI_Request_free(&p.request);
      abandoned().splice(abandoned().end(), pending_);
    }
  }

 private:
  struct Pending {
    std::vector<std::byte> bytes;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  static std::list<Pending>& abandoned() {
    static std::list<Pending> buffers;
    return buffers;
  }
  std::list<Pending> pending_;  // a list: Isend holds a pointer into each buffer
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
      : comm_(comm), options_(options), dimension_(dimension) {
    MPI_Comm_rank(comm_.get(), &rank_);
    MPI_Comm_size(comm_.get(), &size_);
    decopt::detail::require(size_ >= 2, "MpiMasterWorkerChannel: the communicator has " + std::to_string(size_) +
                                            " rank; AsyVRSC-Distributed needs at least 2 ranks (rank 0 is "
                                            "the master, ranks 1..P-1 are the workers)");
    decopt::detail::require_same_dimension("MpiMasterWorkerChannel: the ranks' problems", dimension_, comm_.get());
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
    std::vector<std::byte> out;
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
    std::vector<std::byte> out;
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
    std::vector<std::byte> out;
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
/// the others the same kind with the message of the lowest failed rank. The agreement waits at
/// most options.timeout for the other ranks (a rank stuck elsewhere gives a TransportError, or
/// this rank's own error, instead of a hang; the run is then broken and the program should end
/// with MPI_Abort).
inline void agree_on_failure(const std::exception_ptr& error, MPI_Comm comm, const MpiOptions& options) {
  int rank = 0, size = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  // The reduction runs non-blocking so that it can time out; if it does, MPI may still write the
  // buffers, so they are released rather than freed.
  auto lowest = std::make_unique<int[]>(2);
  lowest[0] = error ? rank : size;
  MPI_Request request;
  MPI_Iallreduce(&lowest[0], &lowest[1], 1, MPI_INT, MPI_MIN, comm, &request);
  try {
    decopt::detail::poll_until(
        options,
        [&] {
          int flag = 0;
          MPI_Test(&request, &flag, MPI_STATUS_IGNORE);
          return flag ? decopt::detail::Poll::done : decopt::detail::Poll::waiting;
        },
        [&] { return "rank " + std::to_string(rank); }, [] { return std::string("the other ranks to finish the run"); });
  } catch (const TransportError&) {
    (void)lowest.release();
    if (error) std::rethrow_exception(error);
    throw;
  }
  const int source = lowest[1];
  if (source == size) return;
  RemoteError remote;
  if (rank == source) remote = describe_error(error);
  std::array<int, 3> head{static_cast<int>(remote.kind), remote.epoch, static_cast<int>(remote.what.size())};
  MPI_Bcast(head.data(), 3, MPI_INT, source, comm);
  remote.kind = static_cast<ErrorKind>(head[0]);
  remote.epoch = head[1];
  remote.what.resize(static_cast<std::size_t>(head[2]));
  MPI_Bcast(remote.what.data(), head[2], MPI_CHAR, source, comm);
  if (error) std::rethrow_exception(error);
  throw_remote(remote, source);
}

/// Rank `root`'s result (every field and the whole history) on every rank of `comm` (collective).
inline void broadcast(CompositionalResult& result, int root, MPI_Comm comm) {
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
  }
  auto size = static_cast<std::uint64_t>(bytes.size());
  MPI_Bcast(&size, 1, MPI_UINT64_T, root, comm);
  bytes.resize(size);
  MPI_Bcast(bytes.data(), static_cast<int>(size), MPI_BYTE, root, comm);
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
}

}  // namespace detail

/// Runs `solver` under mpirun with one call on every rank of `comm`: rank 0 runs run_master on x,
/// every other rank run_worker (one worker per rank; solver.options().workers is not used), over
/// an MpiMasterWorkerChannel. Afterwards x and the returned result — every field and the history
/// — are rank 0's on every rank. Collective.
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
    MPI_Bcast(x.data(), static_cast<int>(x.size()), MPI_DOUBLE, 0, channel.communicator());
    detail::broadcast(result, 0, channel.communicator());
  }
  return result;
}

}  // namespace compositional

using compositional::MpiMasterWorkerChannel;

}  // namespace decopt
