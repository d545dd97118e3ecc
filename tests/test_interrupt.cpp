// Interrupting `sefar run`: SIGTERM/SIGINT stop it cleanly with a checkpoint of the state after the
// last step (exit 143/130), kill -9 at any moment leaves the last complete checkpoint, and
// `--resume` continues either to exactly the records of a run never interrupted.
#include <doctest/doctest.h>

#include <fstream>
#include <random>

#include <fmt/format.h>

#include "io/checkpoint.h"
#include "run_helpers.h"

using namespace sefar;
using namespace sefar::testing;

namespace {

struct Reference {
  fs::path run;
  double seconds = 0;
};

const Reference& reference_run() {
  static TempDir dir("interrupt_reference");
  static const Reference ref = [] {
    Reference r;
    r.run = dir.path / "run";
    auto t0 = std::chrono::steady_clock::now();
    auto result = run_sefar("run " + train_args(r.run));
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO(result.output);
    REQUIRE(result.status == 0);
    MESSAGE("uninterrupted run: " << r.seconds << " s");
    return r;
  }();
  return ref;
}

}  // namespace

TEST_CASE("SIGTERM and SIGINT stop the run with a checkpoint of the last step; --resume continues exactly") {
  const auto& reference = reference_run();
  TempDir dir("interrupt_signal");
  struct Case {
    int signal, status;
    std::int64_t after_step;
  };
  // Mid-epoch in the second epoch (the first semi-supervised one) and in the third.
  for (const auto& c : {Case{SIGTERM, 143, 6}, Case{SIGINT, 130, 11}}) {
    INFO("signal " << c.signal);
    const fs::path run = dir.path / ("run_" + std::to_string(c.signal)), log = dir.path / "log.txt";
    pid_t pid = spawn_sefar("run " + train_args(run), log);
    REQUIRE(wait_for_step(pid, run, c.after_step, 120));
    auto t0 = std::chrono::steady_clock::now();
    ::kill(pid, c.signal);
    int status = wait_child(pid, 60);
    double stop_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::string output = read_text(log);
    INFO(output);
    CHECK(status == c.status);
    MESSAGE("stopped " << stop_seconds << " s after the signal");
    CHECK(output.find("stopped after") != std::string::npos);
    auto latest = io::latest_checkpoint((run / "checkpoints").string());
    REQUIRE(latest);
    const std::int64_t stopped_at = last_step(run) + 1;  // steps done
    CHECK(latest->step == stopped_at);
    if (stopped_at % kStepsPerEpoch != 0) {
      CHECK(latest->name.rfind("step_", 0) == 0);
      CHECK(latest->sidecar["node"]["epoch_open"] == true);
    }
    CHECK_FALSE(fs::exists(run / "model.safetensors"));
    // What the run measured up to the stop is kept: its profile and its report.
    CHECK(fs::exists(run / "profile.json"));
    CHECK(fs::exists(run / "report.html"));

    auto resumed = run_sefar("run --resume " + run.string() + " --quiet");
    INFO(resumed.output);
    REQUIRE(resumed.status == 0);
    check_same_records(reference.run, run);
    CHECK(read_text(reference.run / "model.safetensors") == read_text(run / "model.safetensors"));
  }
}

TEST_CASE("a stop whose profile cannot be written still exits 143 with its checkpoint, and says what failed") {
  TempDir dir("interrupt_unwritable");
  const fs::path run = dir.path / "run", log = dir.path / "log.txt", out = dir.path / "out";
  fs::create_directories(out);  // `run` checks that --profile can be written before it starts
  pid_t pid = spawn_sefar("run " + train_args(run) + " --profile " + (out / "profile.json").string(), log);
  REQUIRE(wait_for_step(pid, run, 3, 120));
  // The profile's folder becomes a regular file: the write fails only on the stop path.
  fs::remove_all(out);
  std::ofstream(out) << "not a directory\n";
  ::kill(pid, SIGTERM);
  int status = wait_child(pid, 60);
  const std::string output = read_text(log);
  INFO(output);
  CHECK(status == 143);
  CHECK(output.find("stopped after") != std::string::npos);
  CHECK(output.find("were not all written") != std::string::npos);
  CHECK(output.find(out.string()) != std::string::npos);  // the path that failed
  CHECK(io::latest_checkpoint((run / "checkpoints").string()));
}

TEST_CASE(
    "kill -9 at random moments: the last complete checkpoint stays loadable and --resume ends as never "
    "killed") {
  const auto& reference = reference_run();
  TempDir dir("interrupt_kill");
  const fs::path run = dir.path / "run", log = dir.path / "log.txt";
  const std::int64_t last = kStepsPerEpoch * kEpochs - 1;
  std::mt19937 rng(20250101);
  // The first kill at a random moment of the first second (start-up, before any checkpoint), the
  // next ones a random time (up to 300 ms: mid-step, mid-evaluation or mid-checkpoint) after a
  // random step further on than the run had come.
  for (int kill = 0; kill < 4; ++kill) {
    const std::int64_t reached = last_step(run);
    if (reached >= last) break;
    // A supervisor's loop: resume when the run has started, else start it.
    bool started = fs::exists(run / "pipeline.json");
    pid_t pid =
        spawn_sefar(started ? "run --resume " + run.string() + " --quiet" : "run " + train_args(run), log);
    std::string when;
    if (kill == 0) {
      double delay = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
      std::this_thread::sleep_for(std::chrono::duration<double>(delay));
      when = fmt::format("{:.2f} s after the start", delay);
    } else {
      std::int64_t target =
          std::uniform_int_distribution<std::int64_t>(reached + 1, std::min(last, reached + 6))(rng);
      double delay = std::uniform_real_distribution<double>(0.0, 0.3)(rng);
      wait_for_step(pid, run, target, 120);
      std::this_thread::sleep_for(std::chrono::duration<double>(delay));
      when = fmt::format("{:.2f} s after step {}", delay, target);
    }
    ::kill(pid, SIGKILL);
    int status = wait_child(pid, 30);
    INFO(read_text(log));
    CHECK((status == 128 + SIGKILL || status == 0));
    // Whatever the moment, every checkpoint there reads back whole (list_checkpoints skips any
    // that does not), and the newest one says where each source resumes.
    auto latest = io::latest_checkpoint((run / "checkpoints").string());
    const std::string what = started ? "resumed run" : "fresh run", saved = latest ? latest->name : "none";
    MESSAGE("killed " << when << " (" << what << "); last complete checkpoint: " << saved);
    if (latest) {
      CHECK(latest->sidecar["resume"].contains("labeled"));
      CHECK(latest->sidecar["step"].get<std::int64_t>() <= last_step(run) + 1);
    }
  }
  auto final_run = run_sefar("run --resume " + run.string() + " --quiet");
  INFO(final_run.output);
  REQUIRE(final_run.status == 0);
  check_same_records(reference.run, run);
  CHECK(read_text(reference.run / "model.safetensors") == read_text(run / "model.safetensors"));
}
