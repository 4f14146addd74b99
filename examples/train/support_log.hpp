// train/support_log.hpp — what Malcom-PSGD's support coding (SupportCoded) sent, per round.
//
// Per round, over the n nodes: the zero fraction of the models (x_k = 0), of the sent supports
// (coordinates off S, which cost no bits), the support changes (entries + leaves, per node and
// coordinate), the leaves that carried a value, and bits per parameter per round
// 8·bytes / (Σ_i deg_i · d). Read from each node's SupportCoded::last_encode(); optimizers with
// another compressor log nothing (a --compare run writes the file from malcom's run).
#pragma once

#include <cmath>
#include <fstream>
#include <type_traits>
#include <string>

#include <decopt/decopt.hpp>

namespace decopt::train {

/// True for an optimizer whose compressor reports SupportCoded's counts.
template <class Optimizer>
constexpr bool codes_support = requires(const Optimizer& o) { o.compressor().last_encode().live; };

/// Mean over the n nodes of the fraction of the d coordinates off the sent support after the last
/// encode; NaN for optimizers without support coding.
template <class NodeAt>
double sent_sparsity(int n, std::size_t d, NodeAt&& node_at) {
  using Optimizer = std::remove_cvref_t<decltype(node_at(0))>;
  if constexpr (codes_support<Optimizer>) {
    double off = 0;
    for (int i = 0; i < n; ++i) off += 1.0 - static_cast<double>(node_at(i).compressor().last_encode().live) / static_cast<double>(d);
    return off / n;
  } else {
    return std::nan("");
  }
}

/// --support-log: one CSV row per round (nothing when the path is empty).
template <class Result>
class SupportLog {
 public:
  SupportLog(const std::string& path, int nodes, std::size_t d, const Result& result)
      : nodes_(nodes), d_(static_cast<double>(d)), result_(result) {
    if (path.empty()) return;
    file_.open(path);
    decopt::detail::require(file_.good(), "cannot write --support-log " + path);
    file_ << "round,model_zero_fraction,sent_zero_fraction,changes_per_param,entered,left,snap_values,bits_per_param\n";
  }
  template <class NodeAt>
  void round(long round, std::uint64_t bytes, NodeAt&& node_at) {
    if (!file_.is_open()) return;
    using Optimizer = std::remove_cvref_t<decltype(node_at(0))>;
    if constexpr (codes_support<Optimizer>) {
      double zeros = 0, live = 0, entered = 0, left = 0, values = 0;
      for (int i = 0; i < nodes_; ++i) {
        const auto& e = node_at(i).compressor().last_encode();
        zeros += static_cast<double>(e.zeros);
        live += static_cast<double>(e.live);
        entered += static_cast<double>(e.entered);
        left += static_cast<double>(e.left);
        values += static_cast<double>(e.snap_values);
      }
      const double all = d_ * nodes_;
      file_ << round << ',' << zeros / all << ',' << 1.0 - live / all << ',' << (entered + left) / all << ','
            << entered << ',' << left << ',' << values << ',' << result_.bits_per_link_param(bytes, round - 1, round) << '\n';
    }
  }

 private:
  int nodes_;
  double d_;
  const Result& result_;
  std::ofstream file_;
};

}  // namespace decopt::train
