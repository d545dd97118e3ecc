// What a run leaves about itself in its run directory, beside its results: RUN_DIR/run.json (the
// build and library versions, and one entry per invocation: command line, device, threads, start and
// end time, exit status) and RUN_DIR/console.log (everything the process wrote to stderr, the
// progress lines included).
#pragma once

#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

namespace sefar::nodes {

// sefar's version and commit, and the versions of LibTorch, FFmpeg (libavcodec, libavformat) and
// oneTBB it runs with.
nlohmann::json build_info();
// "sefar 0.4.0 (commit abc123def456)".
std::string version_line();

// RUN_DIR/run.json, rewritten atomically: at start with this invocation's entry open, at the end with
// its end time and exit status. A resumed run appends its entry to the earlier ones.
class RunRecord {
 public:
  // `invocation`: command_line, device, threads, ... (start time and pid are added).
  RunRecord(std::string run_dir, nlohmann::json invocation, bool resumed);
  void finish(int exit_status);
  ~RunRecord();  // an unfinished record (the process is going down by an exception) says so

 private:
  void write() const;
  std::string path_;
  nlohmann::json record_;
  bool finished_ = false;
};

// Copies everything written to stderr (fd 2) into `path` as well, for as long as it lives: a pipe
// takes fd 2's place and a thread hands each chunk to the terminal and the file. Appends (a resumed
// run continues its console). Restores fd 2 on destruction.
class ConsoleLog {
 public:
  ConsoleLog(const std::string& path, bool append);
  ~ConsoleLog();
  ConsoleLog(const ConsoleLog&) = delete;
  ConsoleLog& operator=(const ConsoleLog&) = delete;

 private:
  int terminal_ = -1, file_ = -1, pipe_read_ = -1;
  std::thread copier_;
};

}  // namespace sefar::nodes
