#include "io/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "io/safetensors.h"

namespace sefar::io {

namespace fs = std::filesystem;
using json = nlohmann::json;

json read_checkpoint_sidecar(const std::string& path) {
  SafetensorsReader reader(path + ".safetensors");
  const auto& meta = reader.metadata();
  if (auto it = meta.find("sidecar"); it != meta.end()) {
    try {
      return json::parse(it->second);
    } catch (const json::exception& e) {
      throw std::runtime_error("checkpoint " + path +
                               ".safetensors: unreadable sidecar metadata: " + e.what());
    }
  }
  std::ifstream in(path + ".json");
  if (!in) throw std::runtime_error("checkpoint " + path + ".json not found");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw std::runtime_error("checkpoint " + path + ".json: " + e.what());
  }
}

std::vector<CheckpointInfo> list_checkpoints(const std::string& dir) {
  std::vector<CheckpointInfo> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".safetensors" || !entry.is_regular_file(ec)) continue;
    CheckpointInfo info;
    info.name = entry.path().stem().string();
    info.path = (fs::path(dir) / info.name).string();
    try {
      info.sidecar = read_checkpoint_sidecar(info.path);
    } catch (const std::exception&) {
      continue;  // not a checkpoint (or not one that reads back)
    }
    if (!info.sidecar.is_object() || !info.sidecar.contains("step") ||
        !info.sidecar["step"].is_number_integer())
      continue;
    info.step = info.sidecar["step"].get<std::int64_t>();
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const CheckpointInfo& a, const CheckpointInfo& b) {
    bool a_best = a.name == "best", b_best = b.name == "best";
    if (a.step != b.step) return a.step < b.step;
    if (a_best != b_best) return a_best;
    return a.name < b.name;
  });
  return out;
}

std::optional<CheckpointInfo> latest_checkpoint(const std::string& dir) {
  auto all = list_checkpoints(dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  auto fail = [&](const std::string& what) {
    throw std::runtime_error("cannot write " + path + ": " + what + ": " + std::strerror(errno));
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create " + tmp);
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int reason = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      errno = reason;
      fail("write failed");
    }
    p += n;
    left -= std::size_t(n);
  }
  bool synced = ::fsync(fd) == 0;
  int saved = errno;
  bool closed = ::close(fd) == 0;
  if (!synced || !closed) {
    if (synced) saved = errno;
    ::unlink(tmp.c_str());
    errno = saved;
    fail("flush failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int reason = errno;
    ::unlink(tmp.c_str());
    errno = reason;
    fail("cannot rename " + tmp + " into place");
  }
}

}  // namespace sefar::io
