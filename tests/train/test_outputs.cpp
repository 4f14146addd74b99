// The files decopt-train and decopt-portfolio write (examples/common/output.hpp, gnuplot.hpp) —
// issue 13, items 10 and 11: output paths checked before the run, atomic writes that leave no
// .tmp behind and fail in words, and a --plot path that cannot inject gnuplot commands; and the
// checkpoint's run record, checked field by field (item 13).
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/gnuplot.hpp"
#include "common/output.hpp"
#include "train/report.hpp"

using namespace decopt;
using namespace decopt::train;
namespace fs = std::filesystem;
using examples::output::TemporaryFolder;

namespace {

std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Sets PATH for the scope of the object (to make gnuplot missing, or a fake one).
class ScopedPath {
 public:
  explicit ScopedPath(const std::string& path) {
    if (const char* old = std::getenv("PATH")) old_ = old;
    ::setenv("PATH", path.c_str(), 1);
  }
  ScopedPath(const ScopedPath&) = delete;
  ScopedPath& operator=(const ScopedPath&) = delete;
  ~ScopedPath() {
    if (old_)
      ::setenv("PATH", old_->c_str(), 1);
    else
      ::unsetenv("PATH");
  }

 private:
  std::optional<std::string> old_;
};

/// Two algorithms with three evaluations each: enough for a plot.
std::vector<RunResult> two_runs() {
  std::vector<RunResult> runs(2);
  runs[0].algorithm = "malcom";
  runs[1].algorithm = "choco";
  for (auto& r : runs) {
    r.nodes = 4;
    r.topology = "ring(4)";
    r.parameters = 1000;
    r.link_count = 8;
    r.rounds = 3;
    for (int k = 1; k <= 3; ++k)
      r.rows.push_back({k, 0.5 * k, static_cast<std::uint64_t>(k) * 1'000'000, 0.2 * k});
  }
  return runs;
}

/// An executable `gnuplot` in `folder` that prints `message` and exits with `status`.
void fake_gnuplot(const TemporaryFolder& folder, const std::string& message, int status) {
  const std::string path = folder.file("gnuplot");
  std::ofstream(path) << "#!/bin/sh\necho '" << message << "' >&2\nexit " << status << "\n";
  ::chmod(path.c_str(), 0755);
}

}  // namespace

TEST_CASE("An output path is refused before the run when its end could not write it", "[train][outputs]") {
  const TemporaryFolder folder("decopt-outputs-test");
  using examples::output::require_writable;
  REQUIRE_THROWS_WITH(require_writable(folder.path().string(), "--checkpoint"),
                      Catch::EndsWith("is a folder, not a file"));
  REQUIRE_THROWS_WITH(require_writable(folder.file("missing/x.csv"), "--csv"),
                      Catch::EndsWith("the folder " + folder.file("missing") + " does not exist"));
  std::ofstream(folder.file("plain")) << "x";
  REQUIRE_THROWS_WITH(require_writable(folder.file("plain/x.png"), "--plot"),
                      Catch::EndsWith("plain is not a folder"));
  REQUIRE_THROWS_WITH(require_writable("/dev/null", "--csv"), Catch::Contains("is not a regular file"));

  // A good path passes and the probe leaves nothing behind; an existing file is left as it was.
  CHECK_NOTHROW(require_writable(folder.file("run.csv"), "--csv"));
  CHECK_NOTHROW(require_writable(folder.file("plain"), "--csv"));
  CHECK(contents(folder.file("plain")) == "x");
  CHECK(std::distance(fs::directory_iterator(folder.path()), fs::directory_iterator()) == 1);

  // decopt-train checks all three before loading any data.
  TrainConfig c;
  c.checkpoint = folder.path().string();
  REQUIRE_THROWS_WITH(check_outputs(c), Catch::Contains("--checkpoint") && Catch::Contains("is a folder"));
  c.checkpoint.clear();
  c.csv = folder.file("missing/r.csv");
  REQUIRE_THROWS_WITH(check_outputs(c), Catch::Contains("--csv") && Catch::Contains("does not exist"));
  c.csv = folder.file("r.csv");
  c.plot = folder.file("r.png");
  c.checkpoint = folder.file("r.ckpt");
  CHECK_NOTHROW(check_outputs(c));
}

TEST_CASE("Atomic writes: the whole file or the old one, no .tmp left behind, and failures in words",
          "[train][outputs]") {
  const TemporaryFolder folder("decopt-outputs-test");
  using examples::output::write_file_atomically;
  const std::string path = folder.file("state.ckpt");
  write_file_atomically(path, std::string("first"), "checkpoint");
  write_file_atomically(path, std::string("second"), "checkpoint");
  CHECK(contents(path) == "second");
  CHECK_FALSE(fs::exists(path + ".tmp"));

  // A folder in place of the file: the old code left state.ckpt.tmp and threw a raw filesystem_error.
  fs::create_directory(folder.file("taken"));
  REQUIRE_THROWS_WITH(write_file_atomically(folder.file("taken"), std::string("x"), "checkpoint"),
                      Catch::Equals("cannot write checkpoint " + folder.file("taken") + ": Is a directory"));
  CHECK_FALSE(fs::exists(folder.file("taken.tmp")));
  REQUIRE_THROWS_WITH(write_file_atomically(folder.file("missing/x"), std::string("x"), "--csv"),
                      Catch::Contains("No such file or directory"));

  // A symbolic link is written through: its target gets the bytes, the link stays a link.
  write_file_atomically(folder.file("target.csv"), std::string("old"), "--csv");
  fs::create_symlink(folder.file("target.csv"), folder.file("link.csv"));
  write_file_atomically(folder.file("link.csv"), std::string("new"), "--csv");
  CHECK(fs::is_symlink(folder.file("link.csv")));
  CHECK(contents(folder.file("target.csv")) == "new");

  write_csv(folder.file("runs.csv"), two_runs());
  CHECK(contents(folder.file("runs.csv")) == csv_text(two_runs()));
  CHECK(csv_text(two_runs()).find("choco,3,1.5,3000000,3,0.6") != std::string::npos);
}

TEST_CASE(
    "A --plot path with quotes and newlines draws the plot and runs nothing (no gnuplot command injection)",
    "[train][outputs][gnuplot]") {
  const TemporaryFolder folder("decopt-outputs-test");
  // The old write_plot spliced the path into `set output '…'`: this one ended the string, ran
  // system('touch <marker>') and started a new one.
  const std::string marker = folder.file("injected");
  const std::string folder_part = folder.file("a'\nsystem('touch " + folder.path().string());
  const std::string hostile = folder_part + "/injected')\nset output 'b.png";
  fs::create_directories(fs::path(hostile).parent_path());
  write_plot(hostile, two_runs());
  CHECK_FALSE(fs::exists(marker));
  REQUIRE(fs::is_regular_file(hostile));
  CHECK(contents(hostile).substr(1, 3) == "PNG");
  CHECK_FALSE(fs::exists(hostile + ".tmp"));

  CHECK(examples::gnuplot::quoted("it's") == "'it''s'");
  REQUIRE_THROWS_AS(examples::gnuplot::quoted("a\nb"), ConfigError);
}

TEST_CASE("A missing gnuplot is named as such, and a failing one with its own message",
          "[train][outputs][gnuplot]") {
  const TemporaryFolder folder("decopt-outputs-test");
  const TemporaryFolder bin("decopt-fake-gnuplot");
  {
    const ScopedPath no_gnuplot(folder.path().string());
    // The old code said "gnuplot failed (install gnuplot-nox)", or "exit status 32512".
    REQUIRE_THROWS_WITH(write_plot(folder.file("x.png"), two_runs()),
                        Catch::EndsWith("--plot: gnuplot not found (apt-get install gnuplot-nox)"));
    TrainConfig c;
    c.plot = folder.file("x.png");
    REQUIRE_THROWS_WITH(check_outputs(c), Catch::Contains("gnuplot not found"));
  }
  fake_gnuplot(bin, "cannot draw today", 3);
  const ScopedPath failing(bin.path().string());
  REQUIRE_THROWS_WITH(write_plot(folder.file("x.png"), two_runs()),
                      Catch::Equals("--plot: gnuplot failed (exit status 3): cannot draw today"));
  CHECK_FALSE(fs::exists(folder.file("x.png")));
}

namespace {
/// A node with no state of its own, so a checkpoint's run record can be tested alone.
struct StatelessNode {
  void save_state(std::vector<std::byte>&) const {}
  std::size_t load_state(std::span<const std::byte>) { return 0; }
};
}  // namespace

TEST_CASE("A forged checkpoint record with a valid checksum is refused field by field", "[train][outputs]") {
  StatelessNode node;
  const auto node_at = [&](int) -> StatelessNode& { return node; };
  RunProgress good;
  good.rounds_done = 20;
  good.seconds = 1.5;
  good.loss_count = 10;
  good.samplers = {{1, 32}};
  good.noise_states = {Rng(7).state()};
  const auto roundtrip = [&](const RunProgress& p) {
    const auto bytes = encode_checkpoint("run", p, 1, node_at);
    return decode_checkpoint(bytes, "run", 1, node_at);
  };
  CHECK(roundtrip(good).rounds_done == 20);
  RunProgress bad = good;
  bad.rounds_done = -7;
  REQUIRE_THROWS_WITH(roundtrip(bad), Catch::Contains("checkpoint round out of range"));
  bad = good;
  bad.loss_count = 21;
  REQUIRE_THROWS_WITH(roundtrip(bad), Catch::Contains("checkpoint progress out of range"));
  bad = good;
  bad.seconds = std::nan("");
  REQUIRE_THROWS_AS(roundtrip(bad), DecodeError);
  bad = good;
  bad.samplers = {{-1, 0}};
  REQUIRE_THROWS_WITH(roundtrip(bad), Catch::Contains("sampler epoch"));
  bad = good;
  bad.noise_states = {Rng::State{}};
  REQUIRE_THROWS_WITH(roundtrip(bad), Catch::Contains("noise generator state is all zero"));
}

TEST_CASE("--target-accuracy: rounds, bytes and simulated seconds to the first evaluation reaching it, null when none does",
          "[train][outputs][target]") {
  RunResult r;
  r.algorithm = "choco";
  r.coder = "elias";
  r.parameters = 1000;
  r.link_count = 8;
  r.rounds = 30;
  r.rows = {{10, 1, 4000, 0.70}, {20, 2, 9000, 0.86}, {30, 3, 12000, 0.84}};
  r.rows[0].simulated_seconds = 1.5;
  r.rows[1].simulated_seconds = 3.25;
  r.rows[2].simulated_seconds = 4.0;
  TrainConfig c;
  CHECK(json_summary(c, r).find("to_target") == std::string::npos);  // only when asked for
  CHECK(json_summary(c, r).find(",\"coder\":\"elias\",") != std::string::npos);
  c.target_accuracy = 0.85;
  CHECK_THAT(json_summary(c, r), Catch::Contains(",\"target_accuracy\":0.85,\"rounds_to_target\":20,\"bytes_to_target\":9000,"
                                                 "\"simulated_seconds_to_target\":3.25,"));
  c.target_accuracy = 0.84;  // reached at round 20 already, not at the last evaluation that equals it
  CHECK_THAT(json_summary(c, r), Catch::Contains("\"rounds_to_target\":20,"));
  c.target_accuracy = 0.70;  // ≥, not >
  CHECK_THAT(json_summary(c, r), Catch::Contains("\"rounds_to_target\":10,\"bytes_to_target\":4000,"));
  c.target_accuracy = 0.9;
  CHECK_THAT(json_summary(c, r), Catch::Contains("\"rounds_to_target\":null,\"bytes_to_target\":null,"
                                                 "\"simulated_seconds_to_target\":null,"));
  // Off the sim transport there is no simulated clock: null even when the target is reached.
  c.target_accuracy = 0.85;
  r.rows[1].simulated_seconds = std::nan("");
  CHECK_THAT(json_summary(c, r), Catch::Contains("\"rounds_to_target\":20,\"bytes_to_target\":9000,"
                                                 "\"simulated_seconds_to_target\":null,"));
}

TEST_CASE("Curves: per-evaluation message size in the CSV and the plot's four labelled panels", "[train][outputs][gnuplot]") {
  const auto runs = two_runs();
  // 1 MB per round over 8 links of 1000 parameters: 1000 bits per parameter per round.
  CHECK(runs[0].interval_bits_per_param(0) == Approx(1000.0));
  CHECK(runs[0].interval_bits_per_param(2) == Approx(1000.0));
  RunResult uneven = runs[0];
  uneven.rows[1].bytes_sent = 1'500'000;  // 0.5 MB in round 2, 1.5 MB in round 3
  CHECK(uneven.interval_bits_per_param(1) == Approx(500.0));
  CHECK(uneven.interval_bits_per_param(2) == Approx(1500.0));
  CHECK_THAT(csv_text(runs), Catch::StartsWith("algorithm,round,epoch,bytes_sent,megabytes_sent,test_accuracy,test_loss,"
                                               "train_loss,sparsity,consensus_distance,seconds,coder,test_samples,"
                                               "simulated_seconds,bits_per_param_per_round\n"));
  const std::string script = plot_script(runs);
  for (const char* label : {"set multiplot layout 2,2", "'megabytes sent (all nodes, log scale)'", "set logscale x",
                            "'round'", "'test accuracy (mean over nodes)'", "'bits per parameter per round (log scale)'",
                            "'parameters exactly zero (%, mean over nodes)'", "using 1:2", "using 3:2", "using 3:4",
                            "using 3:5"}) {
    CAPTURE(label);
    CHECK(script.find(label) != std::string::npos);
  }
  // A run that sends nothing (one node) keeps a linear message-size axis: gnuplot refuses a log
  // axis whose points are all 0.
  auto silent = runs;
  for (auto& r : silent) r.link_count = 0;
  CHECK(plot_script(silent).find("\nset logscale y") == std::string::npos);
  CHECK(plot_script(runs).find("\nset logscale y") != std::string::npos);
  const TemporaryFolder folder("decopt-outputs-test");
  write_plot(folder.file("silent.png"), silent);
  CHECK(contents(folder.file("silent.png")).substr(1, 3) == "PNG");
}

TEST_CASE("--schedule: messages and bits per parameter count the round's neighbours only, and the JSON names them",
          "[train][outputs][schedule]") {
  RunResult r;
  r.algorithm = "malcom";
  r.nodes = 4;
  r.parameters = 100;
  r.rounds = 7;
  r.schedule = "random-matchings";
  // Period 3: 4, 2 and 4 messages (a round in which two nodes sit out); no static link_count.
  r.links_per_round = {4, 2, 4};
  CHECK(r.messages_between(0, 3) == 10);
  CHECK(r.messages_between(2, 7) == 4 + 4 + 2 + 4 + 4);  // rounds 2..6 = phases 2, 0, 1, 2, 0
  CHECK(r.messages_sent() == 10 + 10 + 4);
  r.rows = {{7, 1, 24 * 100 * 4, 0.5}};  // 24 messages of 100 float32 values
  CHECK(r.bits_per_param_per_round() == Approx(32.0));
  TrainConfig c;
  c.schedule = r.schedule;
  const std::string json = json_summary(c, r);
  CHECK_THAT(json, Catch::Contains(",\"schedule\":\"random-matchings\",\"messages_sent\":24,\"messages_per_node_per_round\":"
                                   "0.8571428571,\"support_coding\":false,"));
  // A static graph: link_count messages every round, and no support_coding field (malcom runs SupportCoded).
  RunResult s = r;
  s.schedule = "static";
  s.links_per_round.clear();
  s.link_count = 8;
  CHECK(s.messages_sent() == 56);
  CHECK(json_summary(c, s).find("support_coding") == std::string::npos);
  // The average model's accuracy beside the nodes' mean, when the run measured it.
  CHECK(json_summary(c, s).find("average_model_accuracy") == std::string::npos);
  s.average_model_accuracy = 0.25;
  CHECK_THAT(json_summary(c, s), Catch::Contains(",\"test_loss\":0,\"average_model_accuracy\":0.25,\"total_bytes_sent\":"));
}
