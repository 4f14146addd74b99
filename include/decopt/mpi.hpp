// decopt/mpi.hpp — MpiTransport: one MPI process per node, across machines. Not part of the
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
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "decopt/core/error.hpp"
#include "decopt/topology/topology.hpp"
#include "decopt/transport/thread_network.hpp"  // TransportError

namespace decopt {

/// Options of MpiTransport.
struct MpiOptions {
  std::chrono::milliseconds timeout = std::chrono::seconds(60);  ///< wait for a neighbour before failing
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
    const std::uint64_t mine = topology.fingerprint();
    std::uint64_t low = 0, high = 0;
    MPI_Allreduce(&mine, &low, 1, MPI_UINT64_T, MPI_MIN, comm_);
    MPI_Allreduce(&mine, &high, 1, MPI_UINT64_T, MPI_MAX, comm_);
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
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    while (remaining > 0) {
      bool progressed = false;
      for (std::size_t k = 0; k < neighbors_.size(); ++k) {
        if (done[k]) continue;
        int flag = 0;
        MPI_Message handle;
        MPI_Status status;
        MPI_Improbe(neighbors_[k], tag(round), comm_, &flag, &handle, &status);
        if (!flag) continue;
        int count = 0;
        MPI_Get_count(&status, MPI_BYTE, &count);
        received_[k].resize(static_cast<std::size_t>(count));
        MPI_Mrecv(received_[k].data(), count, MPI_BYTE, &handle, MPI_STATUS_IGNORE);
        inbox[k] = std::span<const std::byte>(received_[k]);
        done[k] = true;
        --remaining;
        progressed = true;
      }
      if (remaining == 0 || progressed) continue;
      if (std::chrono::steady_clock::now() > deadline) {
        std::size_t k = 0;
        while (done[k]) ++k;
        throw TransportError("rank " + std::to_string(rank_) + " timed out after " +
                             std::to_string(std::chrono::duration<double>(options_.timeout).count()) +
                             " s waiting for round " + std::to_string(round) + " from neighbour (rank) " +
                             std::to_string(neighbors_[k]));
      }
      std::this_thread::sleep_for(options_.poll_interval);
    }
  }

  /// Checks, collectively, that every rank's model has dimension d; ConfigError naming both extremes.
  void check_same_dimension(std::size_t d) const {
    const auto mine = static_cast<std::uint64_t>(d);
    std::uint64_t low = 0, high = 0;
    MPI_Allreduce(&mine, &low, 1, MPI_UINT64_T, MPI_MIN, comm_);
    MPI_Allreduce(&mine, &high, 1, MPI_UINT64_T, MPI_MAX, comm_);
    detail::require(low == high, "MpiTransport: the ranks' models have different dimensions (from " +
                                     std::to_string(low) + " to " + std::to_string(high) + "; rank " +
                                     std::to_string(rank_) + " has " + std::to_string(d) + ")");
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

}  // namespace decopt
