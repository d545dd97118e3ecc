// The one way sefar writes a file: whole or not at all. Bytes go to a temporary file beside the
// target (a unique name), which commit() flushes to the disk (fsync), renames over the target and
// whose folder it flushes too (so the rename survives a power loss). An AtomicFile destroyed without
// commit() removes its temporary file: a failed or interrupted write leaves the target as it was.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "util/errors.h"  // WriteError

namespace sefar::util {

class AtomicFile {
 public:
  // Creates the target's folder when missing and the temporary file. Throws WriteError.
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, std::size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Where the bytes go, for writers that open the file themselves (libavformat); their writes are
  // flushed by commit() like this object's own.
  const std::string& temp_path() const { return temp_; }
  const std::string& path() const { return path_; }
  // fsync, rename over path(), fsync of the folder. Throws WriteError (the temporary file removed).
  void commit();

 private:
  std::string path_, temp_;
  int fd_ = -1;
  bool committed_ = false;
};

// An AtomicFile holding `bytes`.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace sefar::util
