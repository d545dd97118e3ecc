// A user's earlier work is never lost: every start-up check runs before anything is written (and in
// `sefar validate` too), a run directory holding a run is refused without --overwrite, one run per
// directory (a lock), checkpoints verified on --resume, split lists fingerprinted, a signal during
// start-up ends the process, and the smaller guards (threads, symlink loops, long values, the share
// of skipped clips).
#include "io/safetensors.h"  // before doctest: its CHECK, not LibTorch logging's

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <limits>
#include <map>
#include <thread>

#include "graph/json_source.h"
#include "io/checkpoint.h"
#include "nodes/run_directory.h"
#include "run_helpers.h"

using namespace sefar;
using namespace sefar::testing;

namespace {

// Every file under `dir` with its bytes: a run directory "byte for byte".
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = read_text(e.path());
  return files;
}

// Each case works on a copy of a finished run.
const fs::path& finished_run() {
  return finished_training_run();
}

fs::path copy_of_finished(const TempDir& dir) {
  const fs::path run = dir.path / "run";
  fs::copy(finished_run(), run, fs::copy_options::recursive);
  return run;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("1. a fresh run into a directory that holds a run is refused and leaves it as it was") {
  TempDir dir("safety_fresh");
  const fs::path run = copy_of_finished(dir);
  const auto before = snapshot(run);
  SUBCASE("a typo'd list") {
    check_exit(run_sefar("run " + train_args(run, "--set train_list=" + (dir.path / "typo.csv").string())), 2,
               {"holds an earlier run"});
  }
  SUBCASE("a typo'd list with --overwrite: every check runs before anything is written") {
    check_exit(run_sefar("run " +
                         train_args(run, "--overwrite --set train_list=" + (dir.path / "typo.csv").string())),
               2, {"typo.csv"});
  }
  SUBCASE("a max_in_flight below what the batchers hold, with --overwrite") {
    check_exit(run_sefar("run " + train_args(run, "--overwrite --set runtime.max_in_flight=1")), 2,
               {"max_in_flight"});
  }
  SUBCASE("a second run while another holds the directory, even with --overwrite") {
    // This process holds the lock as a running sefar does (test 4 starts a real one).
    std::string error;
    auto lock = nodes::RunDirLock::acquire(run.string(), error);
    REQUIRE(lock.locked());
    check_exit(run_sefar("run " + train_args(run, "--overwrite")), 2,
               {"is in use by process " + std::to_string(::getpid())});
  }
  SUBCASE("a good pipeline without --overwrite") {
    check_exit(run_sefar("run " + train_args(run)), 2, {"--resume", "--overwrite"});
  }
  CHECK(snapshot(run) == before);
}

TEST_CASE("1. --overwrite starts over in a directory that holds a run") {
  TempDir dir("safety_overwrite");
  const fs::path run = copy_of_finished(dir);
  auto r = run_sefar("run " + train_args(run, "--overwrite --set epochs=1 --set warmup_epochs=1"));
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(last_step(run) == kStepsPerEpoch - 1);
}

TEST_CASE("2. sefar validate makes the start-up checks of sefar run") {
  TempDir dir("safety_validate");
  const fs::path run = dir.path / "run";
  auto validate = [&](const std::string& extra) {
    std::string args = train_args(run, extra);
    return run_sefar("validate " + args);
  };
  SUBCASE("the good pipeline is valid") {
    CHECK(validate("").status == 0);
  }
  SUBCASE("a missing list file") {
    check_exit(validate("--set train_list=" + (dir.path / "missing.csv").string()), 2, {"missing.csv"});
  }
  SUBCASE("device gpu") {
    check_exit(validate("--set models.net.device=gpu"), 2, {"device"});
  }
  SUBCASE("epochs below warmup_epochs") {
    check_exit(validate("--set epochs=1 --set warmup_epochs=2"), 2, {"warmup_epochs"});
  }
  SUBCASE("a validation list that is missing, empty, a directory, or whose clips are all missing") {
    write_text(dir.path / "empty.csv", "");
    write_text(dir.path / "gone.csv", "nowhere/a.mp4 0\nnowhere/b.mp4 1\n");
    for (const std::string& list : {(dir.path / "missing.csv").string(), (dir.path / "empty.csv").string(),
                                    dir.path.string(), (dir.path / "gone.csv").string()}) {
      INFO(list);
      check_exit(validate("--set val_list=" + list), 2, {"val_list"});
    }
    auto r = validate("--set val_list=" + (dir.path / "gone.csv").string());
    CHECK(contains(r.output, "none of its 2 clips exists"));
    CHECK(contains(r.output, (dir.path / "nowhere").string()));
    CHECK(contains(r.output, "root"));
  }
  CHECK(!fs::exists(run));  // validate writes nothing
}

TEST_CASE("3. labels at or above num_classes stop the run at start, naming the list, line and label") {
  TempDir dir("safety_labels");
  const fs::path& data = tiny_dataset();
  for (const std::string key : {"train_list", "val_list"}) {
    INFO(key);
    std::string text = read_text(data / (key == "train_list" ? "train.csv" : "val.csv"));
    // The data root is the list's folder: the copy lives there too.
    const fs::path list = data / ("labels_" + key + ".csv");
    const auto first_end = text.find('\n');
    const std::string first = text.substr(0, first_end);
    text += first.substr(0, first.rfind(' ')) + " 7\n";  // 3 classes: 7 is out of range
    const std::size_t line = std::size_t(std::count(text.begin(), text.end(), '\n'));
    write_text(list, text);
    check_exit(
        run_sefar("run " + train_args(dir.path / ("run_" + key), "--set " + key + "=" + list.string())), 2,
        {list.string() + ":" + std::to_string(line) + ": label 7 is not below num_classes 3"});
    CHECK(!fs::exists(dir.path / ("run_" + key) / "metrics.jsonl"));
    fs::remove(list);
  }
}

TEST_CASE("4. one run per directory: a second run into it is refused, naming the holder") {
  TempDir dir("safety_lock");
  const fs::path run = dir.path / "run", log = dir.path / "first.log";
  pid_t first = spawn_sefar("run " + train_args(run, "--set epochs=30"), log);
  REQUIRE(wait_for_step(first, run, 1, 120));
  const auto before = read_text(run / "pipeline.json");
  for (const std::string& how :
       {"run " + train_args(run, "--overwrite"), "run --resume " + run.string() + " --quiet"}) {
    INFO(how);
    check_exit(run_sefar(how), 2, {"is in use by process " + std::to_string(first)});
  }
  CHECK(read_text(run / "pipeline.json") == before);
  ::kill(first, SIGKILL);
  wait_child(first, 30);
}

TEST_CASE("5. --resume verifies checkpoints: damaged ones are named and kept, never a silent restart") {
  TempDir dir("safety_checkpoints");
  const fs::path run = copy_of_finished(dir);
  const fs::path checkpoints = run / "checkpoints";
  auto all = io::list_checkpoints(checkpoints.string());
  REQUIRE(all.size() >= 2);
  SUBCASE("every checkpoint truncated: exit 2, the directory byte for byte as it was") {
    for (const auto& c : all)
      fs::resize_file(c.path + ".safetensors", fs::file_size(c.path + ".safetensors") / 2);
    const auto before = snapshot(run);
    check_exit(run_sefar("run --resume " + run.string() + " --quiet"), 2, {"every checkpoint"});
    CHECK(snapshot(run) == before);
  }
  SUBCASE("the newest with a flipped byte: named, renamed aside, the next one used") {
    // Cut the run back: its newest checkpoint damaged, resume from the one before.
    const auto& newest = all.back();
    {
      std::fstream f(newest.path + ".safetensors", std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(-16, std::ios::end);
      char c = 0;
      f.read(&c, 1);
      f.seekp(-16, std::ios::end);
      c = char(c ^ 0x5a);
      f.write(&c, 1);
    }
    check_exit(run_sefar("run --resume " + run.string() + " --quiet"), 0,
               {newest.path + ".safetensors is damaged (data checksum"});
    CHECK(fs::exists(newest.path + ".safetensors.damaged"));
    check_same_records(finished_run(), run);
  }
  SUBCASE("non-finite weights are damage, not a training failure") {
    // A checkpoint saved with a NaN weight: rewrite the newest one's tensors with one NaN.
    const auto& newest = all.back();
    std::map<std::string, std::string> meta;
    auto tensors = io::load_safetensors(newest.path + ".safetensors", &meta);
    for (auto& [name, t] : tensors)
      if (name.rfind("student.", 0) == 0 && t.is_floating_point()) {
        t = t.clone();
        t.view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
        break;
      }
    meta.erase(io::kDataChecksumKey);
    io::save_safetensors(newest.path + ".safetensors", tensors, meta);
    check_exit(run_sefar("run --resume " + run.string() + " --quiet"), 0, {"non-finite"});
    CHECK(fs::exists(newest.path + ".safetensors.damaged"));
  }
}

TEST_CASE("6. --resume refuses split lists that changed since the checkpoint") {
  TempDir dir("safety_lists");
  const fs::path& data = tiny_dataset();
  const fs::path list = data / "fingerprint_train.csv";
  fs::copy_file(data / "train.csv", list, fs::copy_options::overwrite_existing);
  const fs::path run = dir.path / "run";
  auto first = run_sefar("run " + train_args(run, "--set epochs=2 --set train_list=" + list.string()));
  INFO(first.output);
  REQUIRE(first.status == 0);
  // Shorter by its last line.
  std::string text = read_text(list);
  text.erase(text.rfind('\n', text.size() - 2) + 1);
  write_text(list, text);
  const auto before = snapshot(run);
  check_exit(run_sefar("run --resume " + run.string() + " --quiet"), 2,
             {list.string(), "--allow-changed-lists"});
  CHECK(snapshot(run) == before);
  auto allowed = run_sefar("run --resume " + run.string() + " --quiet --allow-changed-lists");
  INFO(allowed.output);
  CHECK(allowed.status == 0);
  fs::remove(list);
}

TEST_CASE("7. a signal during start-up ends the process, also when it is blocked opening a FIFO") {
  TempDir dir("safety_fifo");
  const fs::path fifo = dir.path / "pipeline.json";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  pid_t pid = spawn_sefar("run " + fifo.string(), dir.path / "log.txt");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ::kill(pid, SIGTERM);
  const auto t0 = std::chrono::steady_clock::now();
  int status = wait_child(pid, 10);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(read_text(dir.path / "log.txt"));
  CHECK(status == 128 + SIGTERM);
  CHECK(waited < 5);
}

TEST_CASE("8. the smaller guards") {
  TempDir dir("safety_small");
  const fs::path run = dir.path / "run";
  SUBCASE("threads far above the core count are capped, saying so") {
    check_exit(run_sefar("validate " + train_args(run, "--set models.net.threads=1000")), 0,
               {"threads 1000 is more than the"});
  }
  SUBCASE("a symlink loop is named as one") {
    fs::create_symlink(dir.path / "b.json", dir.path / "a.json");
    fs::create_symlink(dir.path / "a.json", dir.path / "b.json");
    check_exit(run_sefar("validate " + (dir.path / "a.json").string()), 2, {"symlink loop"});
  }
  SUBCASE("a quoted value is cut after 200 characters and holds no raw bytes") {
    auto r = run_sefar("validate " + train_args(run, "--set runtime.seed=" + std::string(5000, 'x')));
    check_exit(r, 2, {"... (5002 characters)"});
    CHECK(!contains(r.output, std::string(300, 'x')));
    CHECK(graph::quote_value(nlohmann::json("a\xff\x01"
                                            "b")) == "\"a\\ufffd\\u0001b\"");
  }
  SUBCASE("too large a share of skipped clips stops the run (max_skip_fraction)") {
    // Half the labeled clips point at a file that is not a video.
    const fs::path& data = tiny_dataset();
    const std::string text = read_text(data / "train.csv");
    const auto n = std::count(text.begin(), text.end(), '\n');
    const fs::path junk = data / "junk.mp4";
    write_text(junk, "not a video");
    std::string bad;
    for (std::ptrdiff_t i = 0; i < n; ++i) bad += "junk.mp4 0\n";
    const fs::path list = data / "half_bad.csv";
    write_text(list, text + bad);
    check_exit(run_sefar("run " + train_args(run, "--set train_list=" + list.string() +
                                                      " --set runtime.max_skip_fraction=0.3")),
               2, {"runtime.max_skip_fraction=0.3"});
    fs::remove(list);
    fs::remove(junk);
  }
}
