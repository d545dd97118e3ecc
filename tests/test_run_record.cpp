// What a run leaves about itself: run.json (build, library versions, each invocation's command
// line, times and exit status) and console.log (what stderr showed); sefar --version.
#include "report/report.h"
#include "nodes/run_directory.h"  // before doctest: its CHECK, not LibTorch logging's

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "run_helpers.h"

using namespace sefar::testing;

TEST_CASE("a finished run records its invocation in run.json and its console in console.log") {
  const fs::path& run = finished_training_run();
  auto record = nlohmann::json::parse(read_text(run / "run.json"));
  REQUIRE(record["invocations"].size() == 1);
  const auto& first = record["invocations"][0];
  CHECK(first["exit_status"] == 0);
  CHECK(first["command_line"].get<std::string>().find(" run ") != std::string::npos);
  CHECK(first["resumed"] == false);
  CHECK(first["device"] == "cpu");
  CHECK(first.contains("start"));
  CHECK(first.contains("end"));
  for (const char* key : {"sefar", "commit", "libtorch", "ffmpeg", "libavcodec", "onetbb"}) {
    INFO(key);
    CHECK(!first["build"][key].get<std::string>().empty());
  }
  const std::string console = read_text(run / "console.log");
  CHECK(console.find("run directory: " + run.string()) != std::string::npos);
  CHECK(console.find("epoch 1/3 step 1 loss") != std::string::npos);
  CHECK(console.find("epoch 2/3 step 1/5 loss") != std::string::npos);  // steps per epoch known after one
  CHECK(console.find("epoch 3/3: val top-1") != std::string::npos);
}

TEST_CASE("the report shows the run records") {
  const fs::path& run = finished_training_run();
  const auto record = nlohmann::json::parse(read_text(run / "run.json"));
  const std::string html = sefar::report::render_report(run.string());
  CHECK(html.find("<h2>Run records</h2>") != std::string::npos);
  CHECK(html.find(record["invocations"][0]["build"]["commit"].get<std::string>()) != std::string::npos);
  CHECK(html.find(record["invocations"][0]["start"].get<std::string>()) != std::string::npos);
  // The report the run left was drawn again once run.json knew the end and the exit status.
  const std::string left = read_text(run / "report.html");
  CHECK(left.find(record["invocations"][0]["end"].get<std::string>()) != std::string::npos);
  CHECK(left.find("running (when this report was written)") == std::string::npos);
}

TEST_CASE("report.html follows the run: written at every epoch end") {
  TempDir dir("live_report");
  const fs::path run = dir.path / "run";
  // A long run, looked at while it trains its second epoch, then stopped.
  const pid_t pid = spawn_sefar("run " + train_args(run, "--set epochs=50"), dir.path / "log");
  const bool second_epoch = wait_for_step(pid, run, kStepsPerEpoch + 1, 120);
  const bool present = fs::exists(run / "report.html");
  const std::string html = read_text(run / "report.html");
  ::kill(pid, SIGKILL);
  wait_child(pid, 30);
  INFO(read_text(dir.path / "log"));
  REQUIRE(second_epoch);
  REQUIRE(present);
  CHECK(html.find("epoch 1, ") != std::string::npos);  // the first evaluation
  CHECK(html.find("<section id=\"training\">") != std::string::npos);  // throughput and gradient norm
  CHECK(html.find("running (when this report was written)") != std::string::npos);
}

TEST_CASE("a resumed run appends its invocation; a failed one records its exit status") {
  TempDir dir("run_record");
  const fs::path run = dir.path / "run";
  fs::copy(finished_training_run(), run, fs::copy_options::recursive);
  auto resumed = run_sefar("run --resume " + run.string() + " --quiet");
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  {
    auto record = nlohmann::json::parse(read_text(run / "run.json"));
    REQUIRE(record["invocations"].size() == 2);
    CHECK(record["invocations"][1]["resumed"] == true);
    CHECK(record["invocations"][1]["exit_status"] == 0);
  }
  auto failed = run_sefar("run " + train_args(run, "--overwrite --set student.inject_nonfinite_at_step=2"));
  INFO(failed.output);
  REQUIRE(failed.status == 1);
  auto record = nlohmann::json::parse(read_text(run / "run.json"));
  // --overwrite starts a new record: the fresh run's invocation alone.
  REQUIRE(record["invocations"].size() == 1);
  CHECK(record["invocations"][0]["exit_status"] == 1);
  CHECK(read_text(run / "console.log").find("non-finite loss at step 2") != std::string::npos);
}

TEST_CASE("sefar --version names the version, the commit and the libraries") {
  auto r = run_sefar("--version");
  CHECK(r.status == 0);
  CHECK(r.output.find("sefar 0.") == 0);
  CHECK(r.output.find("(commit ") != std::string::npos);
  CHECK(r.output.find("\"libtorch\"") != std::string::npos);
}

TEST_CASE("the time left counts each phase at its own step time, plus the evaluations") {
  using sefar::nodes::PhaseTimes;
  using sefar::nodes::RunLeft;
  PhaseTimes t;
  t.warmup_step = 1;
  t.evaluation = 3;
  // In the warm-up: the semi-supervised steps are not timed yet, so the estimate is a lower bound.
  auto during_warmup = sefar::nodes::time_left(RunLeft{5, 20, 3}, t);
  CHECK(during_warmup.seconds == doctest::Approx(5 * 1.0 + 3 * 3.0));
  CHECK(!during_warmup.complete);
  t.semi_step = 3;
  auto later = sefar::nodes::time_left(RunLeft{0, 20, 3}, t);
  CHECK(later.seconds == doctest::Approx(20 * 3.0 + 3 * 3.0));
  CHECK(later.complete);
  CHECK(sefar::nodes::time_left(RunLeft{}, t).seconds == 0);
}
