#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace sefar::util {

namespace fs = std::filesystem;

namespace {

std::string errno_text() {
  return std::strerror(errno);
}

// Flushes a folder's entries (a rename in it) to the disk. Some file systems refuse fsync on a
// folder (EINVAL): nothing more can be done there, and the data itself is already on the disk.
void sync_folder(const fs::path& folder, const std::string& path) {
  int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  const bool ok = ::fsync(fd) == 0 || errno == EINVAL;
  const std::string reason = errno_text();
  ::close(fd);
  if (!ok) throw WriteError(path, "cannot flush its folder: " + reason);
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  static std::atomic<unsigned> counter{0};
  const fs::path target(path_);
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  if (ec)
    throw WriteError(path_,
                     "cannot create the folder " + target.parent_path().string() + ": " + ec.message());
  temp_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw WriteError(path_, "cannot create " + temp_ + ": " + errno_text());
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw WriteError(path_, "write failed: " + errno_text());
    }
    p += n;
    size -= std::size_t(n);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) throw WriteError(path_, "cannot flush it to the disk (disk full?): " + errno_text());
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw WriteError(path_, "close failed: " + errno_text());
  if (std::rename(temp_.c_str(), path_.c_str()) != 0)
    throw WriteError(path_, "cannot rename " + temp_ + " into place: " + errno_text());
  committed_ = true;
  sync_folder(fs::path(path_).parent_path(), path_);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

}  // namespace sefar::util
