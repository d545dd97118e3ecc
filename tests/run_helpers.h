// Helpers for the tests that train through the `sefar` binary: run it (to completion or as a child
// to signal), read a run's metrics, and a tiny synthetic dataset shared by a test binary.
#pragma once

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace sefar::testing {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Result {
  int status;  // exit status; 128 + N when ended by signal N
  std::string output;
};

inline int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Runs a shell command line to completion and returns what it wrote to stdout; status -2 when it
// cannot be started. No assertions, so it may run on any thread.
inline Result capture(const std::string& command_line) {
  FILE* pipe = popen(command_line.c_str(), "r");
  if (!pipe) return {-2, "popen failed: " + command_line};
  std::string out;
  std::array<char, 4096> buf;
  while (std::size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  return {decode_status(pclose(pipe)), out};
}

// Runs `sefar ARGS` to completion, stdout and stderr together.
inline Result run_sefar(const std::string& args) {
  auto r = capture(std::string(SEFAR_BINARY) + " " + args + " 2>&1");
  REQUIRE(r.status != -2);
  return r;
}

// Checks how a command ended: exit status `status`, and each of `fragments` in its output (shown on
// failure).
inline void check_exit(const Result& r, int status, std::initializer_list<std::string> fragments) {
  INFO(r.output);
  CHECK(r.status == status);
  for (const std::string& fragment : fragments) {
    INFO("expected in the output: " << fragment);
    CHECK(r.output.find(fragment) != std::string::npos);
  }
}

// `sefar ARGS` as a child process (the child is sefar itself, not a shell), output to `log`.
inline pid_t spawn_sefar(const std::string& args, const fs::path& log) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::signal(SIGINT, SIG_DFL);  // not ignored, whatever the test runner's setting
    ::signal(SIGTERM, SIG_DFL);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    std::string cmd = "exec " + std::string(SEFAR_BINARY) + " " + args;
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Waits for a child; kills it and returns -1 after `timeout_s`.
inline int wait_child(pid_t pid, double timeout_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_status(status);
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

inline std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every record of RUN_DIR/metrics.jsonl without its wall-clock fields.
inline std::vector<json> records(const fs::path& run_dir) {
  std::vector<json> out;
  std::ifstream in(run_dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) continue;  // a line cut by kill -9 (a resumed run cuts it away)
    j.erase("seconds");
    out.push_back(j);
  }
  return out;
}

inline std::int64_t last_step(const fs::path& run_dir) {
  std::int64_t last = -1;
  for (const auto& r : records(run_dir))
    if (r.value("kind", "") == "step") last = r["step"].get<std::int64_t>();
  return last;
}

// Waits until the run has logged step `step` (or the child ended); false on timeout.
inline bool wait_for_step(pid_t pid, const fs::path& run_dir, std::int64_t step, double timeout_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (last_step(run_dir) >= step) return true;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// Checks two runs logged the same records: every step's losses, every epoch summary and
// evaluation, bit for bit (wall-clock fields aside).
inline void check_same_records(const fs::path& expected_dir, const fs::path& actual_dir) {
  auto expected = records(expected_dir), actual = records(actual_dir);
  CHECK(actual.size() == expected.size());
  for (std::size_t i = 0; i < std::min(actual.size(), expected.size()); ++i) {
    INFO("record " << i);
    CHECK(actual[i].dump() == expected[i].dump());
  }
}

// A tiny synthetic dataset (3 classes: 9 labeled, 9 unlabeled, 6 validation clips), made once per
// test binary.
inline const fs::path& tiny_dataset() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("sefar_resume_data_" + std::to_string(::getpid()));
    auto r = run_sefar(
        "synth " + d.string() +
        " --classes 3 --train-per-class 6 --val-per-class 2 --labeled 0.5 --size 48x40 --frames 16:24 "
        "--threads 2");
    INFO(r.output);
    REQUIRE(r.status == 0);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::temp_directory_path() / ("sefar_resume_data_" + std::to_string(::getpid())), ec);
    });
    return d;
  }();
  return dir;
}

// `run` arguments for the quickstart pipeline on the tiny dataset: 3 epochs (the first one
// supervised warm-up) of 5 steps, batches of 2 labeled and 4 unlabeled clips, one LibTorch thread.
inline std::string train_args(const fs::path& run_dir, const std::string& extra = "") {
  const fs::path& data = tiny_dataset();
  return std::string(SEFAR_SOURCE_DIR) + "/pipelines/quickstart.json --quiet" +
         " --set train_list=" + (data / "train.csv").string() +
         " --set unlabeled_list=" + (data / "unlabel.csv").string() +
         " --set val_list=" + (data / "val.csv").string() +
         " --set num_classes=3 --set epochs=3 --set warmup_epochs=1 --set batch=2 --set unlabeled_batch=4"
         " --set models.net.threads=1 --set train.keep_last=10 --set train.log_every=1 --set runtime.threads=2"
         " --set runtime.run_dir=" +
         run_dir.string() + (extra.empty() ? "" : " " + extra);
}

constexpr int kStepsPerEpoch = 5, kEpochs = 3;

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("sefar_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A finished, uninterrupted run of the tiny training job (train_args), made once per test binary.
inline const fs::path& finished_training_run() {
  static TempDir dir("finished_run");
  static const fs::path run = [] {
    fs::path r = dir.path / "run";
    auto result = run_sefar("run " + train_args(r));
    INFO(result.output);
    REQUIRE(result.status == 0);
    return r;
  }();
  return run;
}

}  // namespace sefar::testing
