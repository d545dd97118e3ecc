// CRC-32C (Castagnoli), the checksum of checkpoint data and of split-list fingerprints: a bit flip or
// a cut anywhere in the bytes changes it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sefar::io {

// Continues `crc` (0 to start) over `n` bytes.
std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0);

// Eight lowercase hex digits.
std::string crc32c_hex(std::uint32_t crc);

// The CRC-32C and size of a file's bytes; throws std::runtime_error naming the file.
struct FileFingerprint {
  std::uint64_t bytes = 0;
  std::uint32_t crc = 0;
};
FileFingerprint fingerprint_file(const std::string& path);

}  // namespace sefar::io
