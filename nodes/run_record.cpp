#include "nodes/run_record.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>
#include <oneapi/tbb/version.h>
#include <torch/version.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
}

#include "graph/runtime.h"
#include "sefar_build_info.h"
#include "util/atomic_file.h"

namespace sefar::nodes {

using json = nlohmann::json;

namespace {

std::string ffmpeg_version(unsigned v) {
  return fmt::format("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff);
}

// Local time with its offset, ISO 8601: 2026-12-07T03:10:00+0000.
std::string now_iso() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&t, &tm);
  char text[64];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S%z", &tm);
  return text;
}

}  // namespace

json build_info() {
  return {{"sefar", SEFAR_VERSION},
          {"commit", SEFAR_COMMIT},
          {"libtorch", TORCH_VERSION},
          {"ffmpeg", av_version_info()},
          {"libavcodec", ffmpeg_version(avcodec_version())},
          {"libavformat", ffmpeg_version(avformat_version())},
          {"onetbb", TBB_runtime_version()}};
}

std::string version_line() {
  return fmt::format("sefar {} (commit {})", SEFAR_VERSION, SEFAR_COMMIT);
}

RunRecord::RunRecord(std::string run_dir, json invocation, bool resumed)
    : path_((std::filesystem::path(run_dir) / "run.json").string()) {
  record_ = json::object();
  if (resumed) {
    std::ifstream in(path_);
    // Unreadable or absent: this invocation starts a new record.
    if (in) record_ = json::parse(in, nullptr, /*allow_exceptions=*/false);
  }
  if (!record_.is_object()) record_ = json::object();
  if (!record_.contains("invocations") || !record_["invocations"].is_array())
    record_["invocations"] = json::array();
  invocation["start"] = now_iso();
  invocation["pid"] = ::getpid();
  invocation["resumed"] = resumed;
  invocation["build"] = build_info();
  invocation["exit_status"] = nullptr;
  record_["invocations"].push_back(std::move(invocation));
  write();
}

void RunRecord::finish(int exit_status) {
  auto& last = record_["invocations"].back();
  last["end"] = now_iso();
  last["exit_status"] = exit_status;
  finished_ = true;
  write();
}

RunRecord::~RunRecord() {
  if (finished_) return;
  try {
    record_["invocations"].back()["end"] = now_iso();
    write();
  } catch (...) {
  }
}

void RunRecord::write() const {
  util::write_file_atomic(path_, record_.dump(2) + "\n");
}

ConsoleLog::ConsoleLog(const std::string& path, bool append) {
  file_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
  if (file_ < 0) throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    ::close(file_);
    throw std::runtime_error(fmt::format("cannot make a pipe for {}: {}", path, std::strerror(errno)));
  }
  std::fflush(stderr);
  terminal_ = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
  ::dup2(fds[1], STDERR_FILENO);
  ::close(fds[1]);
  pipe_read_ = fds[0];
  copier_ = std::thread([this] {
    char buffer[4096];
    for (;;) {
      ssize_t n = ::read(pipe_read_, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      for (int fd : {terminal_, file_}) {
        const char* p = buffer;
        ssize_t left = n;
        while (left > 0) {
          ssize_t w = ::write(fd, p, std::size_t(left));
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) break;  // a closed terminal or a full disk: the other copy goes on
          p += w;
          left -= w;
        }
      }
    }
  });
}

ConsoleLog::~ConsoleLog() {
  std::fflush(stderr);
  ::dup2(terminal_, STDERR_FILENO);  // closes the pipe's last write end: the copier sees its end
  if (copier_.joinable()) copier_.join();
  ::close(pipe_read_);
  ::close(terminal_);
  ::close(file_);
}

}  // namespace sefar::nodes
