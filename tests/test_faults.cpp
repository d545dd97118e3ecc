// Faults while training through `sefar run`: a non-finite loss (stop with an error that names the
// place, or skip the step), and a run directory that cannot be written (exit 74, naming the path,
// the earlier checkpoints left as they were). After each, --resume continues to the same result as
// a run without the fault.
#include <doctest/doctest.h>

#include <unistd.h>

#include "io/checkpoint.h"
#include "run_helpers.h"

using namespace sefar;
using namespace sefar::testing;

namespace {

const fs::path& reference_run() { return finished_training_run(); }

std::vector<std::string> checkpoint_names(const fs::path& run) {
  std::vector<std::string> names;
  for (const auto& c : io::list_checkpoints((run / "checkpoints").string())) names.push_back(c.name);
  return names;
}

bool has_temporary_files(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp") != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("a NaN loss stops the run at its step with an error naming node, step, losses and clips") {
  const fs::path& reference = reference_run();
  TempDir dir("faults_nan_stop");
  const fs::path run = dir.path / "run";
  // Step 7: the third step of epoch 2, semi-supervised.
  auto r = run_sefar("run " + train_args(run, "--set student.inject_nonfinite_at_step=7"));
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK(r.output.find("node 'train' (train_loop) failed") != std::string::npos);
  CHECK(r.output.find("non-finite loss at step 7 (epoch 2): loss nan, sup nan") != std::string::npos);
  const std::string videos = (tiny_dataset() / "videos").string() + "/";
  CHECK(r.output.find("; labeled clips: " + videos) != std::string::npos);
  CHECK(r.output.find("; unlabeled clips: " + videos) != std::string::npos);
  CHECK(r.output.find("the last checkpoint is kept") != std::string::npos);
  // Nothing after the last good checkpoint was kept: the epoch 1 checkpoint, no model.
  CHECK(last_step(run) == 6);
  CHECK(checkpoint_names(run) == std::vector<std::string>{"best", "epoch_0001"});
  CHECK_FALSE(fs::exists(run / "model.safetensors"));
  // The checkpoint is intact: resumed (without the injected fault), the run ends as the reference.
  auto resumed =
      run_sefar("run " + train_args(run, "--set student.inject_nonfinite_at_step=-1 --resume " + run.string()));
  INFO(resumed.output);
  CHECK(resumed.status == 0);
  check_same_records(reference, run);
}

TEST_CASE("on_nonfinite: skip skips the step without an update, counts it and reports it") {
  const fs::path& reference = reference_run();
  TempDir dir("faults_nan_skip");
  const fs::path run = dir.path / "run";
  auto r = run_sefar("run " +
                     train_args(run, "--set student.inject_nonfinite_at_step=7 --set train.on_nonfinite=skip"));
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("non-finite loss at step 7 (epoch 2)") != std::string::npos);
  CHECK(r.output.find("skipped 1 step(s) with a non-finite loss or gradient (steps 7)") != std::string::npos);
  auto expected = records(reference), actual = records(run);
  int steps = 0;
  bool epoch_counted = false;
  for (const auto& rec : actual) {
    if (rec["kind"] == "step") {
      ++steps;
      std::int64_t step = rec["step"];
      if (step == 7) {
        CHECK(rec["skipped"] == "nonfinite");
        CHECK(rec["loss"].is_null());  // NaN
      } else {
        CHECK_FALSE(rec.contains("skipped"));
      }
    }
    if (rec["kind"] == "epoch" && rec["epoch"] == 2) epoch_counted = rec.value("skipped_steps", 0) == 1;
  }
  CHECK(steps == kStepsPerEpoch * kEpochs);
  CHECK(epoch_counted);
  // Up to the skipped step the run is the reference run.
  for (std::size_t i = 0; i < expected.size() && i < actual.size(); ++i) {
    if (actual[i]["kind"] == "step" && actual[i]["step"] == 7) break;
    CHECK(actual[i].dump() == expected[i].dump());
  }
}

TEST_CASE("statistics read from the device every few steps: the same records and the same non-finite policy") {
  // On a GPU the training loop reads the steps' losses every log_every steps (train.read_stats_every),
  // so that no step waits for the device; on this CPU the same path runs when asked.
  const fs::path& reference = reference_run();
  TempDir dir("faults_read_every");
  SUBCASE("a normal run logs the same records") {
    const fs::path run = dir.path / "run";
    auto r = run_sefar("run " + train_args(run, "--set train.read_stats_every=4"));
    INFO(r.output);
    REQUIRE(r.status == 0);
    check_same_records(reference, run);
  }
  SUBCASE("a NaN stops the run at its step, found when its statistics are read") {
    // Steps 5-8 are read together, after step 8: step 8 ran, but a non-finite step updates nothing
    // and the stop comes before any checkpoint, as when every step is read.
    const fs::path run = dir.path / "run";
    auto r = run_sefar("run " + train_args(run, "--set train.read_stats_every=4 --set student.inject_nonfinite_at_step=7"));
    INFO(r.output);
    CHECK(r.status == 1);
    CHECK(r.output.find("non-finite loss at step 7 (epoch 2): loss nan, sup nan") != std::string::npos);
    CHECK(last_step(run) == 6);
    CHECK(checkpoint_names(run) == std::vector<std::string>{"best", "epoch_0001"});
  }
  SUBCASE("on_nonfinite: skip gives the records of a run read step by step up to the step after") {
    const fs::path every = dir.path / "every", batched = dir.path / "batched";
    const std::string skip = "--set student.inject_nonfinite_at_step=7 --set train.on_nonfinite=skip";
    REQUIRE(run_sefar("run " + train_args(every, skip)).status == 0);
    auto r = run_sefar("run " + train_args(batched, skip + " --set train.read_stats_every=4"));
    INFO(r.output);
    REQUIRE(r.status == 0);
    auto expected = records(every), actual = records(batched);
    REQUIRE(actual.size() == expected.size());
    // Step 8 ran before step 7 was known to be non-finite: AdamW's bias correction counted step 7
    // then (models/train_step.h, read_step_stats), so from step 8 on the figures differ slightly.
    for (std::size_t i = 0; i < expected.size(); ++i) {
      if (actual[i]["kind"] == "step" && actual[i]["step"] == 8) break;
      CHECK(actual[i].dump() == expected[i].dump());
    }
  }
}

TEST_CASE("a checkpoint that cannot be written: exit 74 naming the path, earlier checkpoints intact") {
  const fs::path& reference = reference_run();
  TempDir dir("faults_disk");
  const fs::path run = dir.path / "run", checkpoints = run / "checkpoints";
  // The second epoch's checkpoint file cannot be created: a directory holds its name. (This fails
  // the write for every user, root included, which a read-only folder does not.)
  fs::create_directories(checkpoints / "epoch_0002.safetensors" / "in_the_way");
  auto r = run_sefar("run " + train_args(run));
  INFO(r.output);
  CHECK(r.status == 74);
  CHECK(r.output.find("cannot write checkpoint " + (checkpoints / "epoch_0002").string() + ".safetensors") !=
        std::string::npos);
  CHECK(checkpoint_names(run) == std::vector<std::string>{"best", "epoch_0001"});
  CHECK(io::read_checkpoint_sidecar((checkpoints / "epoch_0001").string())["step"] == kStepsPerEpoch);
  CHECK_FALSE(has_temporary_files(checkpoints));

  fs::remove_all(checkpoints / "epoch_0002.safetensors");
  if (::geteuid() == 0) {
    MESSAGE(
        "running as root, where a read-only folder does not stop writes: the read-only check is skipped "
        "(the obstructed write above covers the error path)");
  } else {
    // A read-only checkpoint folder while resuming: the next checkpoint fails the same way.
    fs::permissions(checkpoints, fs::perms::owner_read | fs::perms::owner_exec, fs::perm_options::replace);
    auto ro = run_sefar("run --resume " + run.string() + " --quiet");
    fs::permissions(checkpoints, fs::perms::owner_all, fs::perm_options::replace);
    INFO(ro.output);
    CHECK(ro.status == 74);
    CHECK(ro.output.find("cannot write checkpoint " + (checkpoints / "epoch_0002").string()) !=
          std::string::npos);
    CHECK(checkpoint_names(run) == std::vector<std::string>{"best", "epoch_0001"});
  }
  // With the way clear, the run resumes from the intact checkpoint and ends as the reference.
  auto resumed = run_sefar("run --resume " + run.string() + " --quiet");
  INFO(resumed.output);
  CHECK(resumed.status == 0);
  check_same_records(reference, run);

  // A run directory that cannot be created at all (its parent is a regular file): found before the
  // run starts, so it is reported like any other invalid setting (exit 2), naming the setting.
  std::ofstream(dir.path / "file") << "not a folder\n";
  auto bad = run_sefar("run " + train_args(dir.path / "file" / "run"));
  CHECK(bad.status == 2);
  CHECK(bad.output.find("runtime \"run_dir\": cannot write") != std::string::npos);
  CHECK(bad.output.find("cannot create the folder " + (dir.path / "file" / "run").string()) !=
        std::string::npos);
}
