// safetensors reading (memory-mapped) and writing.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header, then the data buffer. The header
// maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the start of
// the data buffer) plus an optional "__metadata__" map of strings to strings. The writer pads the header
// with spaces to a multiple of 8 bytes and orders tensors by decreasing element size so that every
// tensor in a file it writes starts aligned to its element size.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sefar::io {

// One tensor's header entry.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "BF16", ... as in the file
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets in the data buffer
  uint64_t end = 0;
};

// The dtype string for a tensor type ("F32" for float, ...); throws for types safetensors cannot hold.
std::string safetensors_dtype_name(at::ScalarType type);
// The tensor type for a dtype string; throws for names this reader does not support.
at::ScalarType safetensors_scalar_type(const std::string& dtype);

// A memory-mapped safetensors file. The header is parsed and checked on construction (every entry
// well formed, sizes consistent with dtype and shape, the data buffer covered exactly with no holes or
// overlaps); errors name the file and, where there is one, the tensor.
// The metadata key under which save_safetensors stores the data section's CRC-32C (io/crc32c.h).
inline constexpr const char* kDataChecksumKey = "sefar.data_crc32c";

class SafetensorsReader {
 public:
  explicit SafetensorsReader(const std::string& path);

  const std::string& path() const { return path_; }
  // Entries in name order.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const SafetensorsEntry& entry(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Empty when the data section matches the checksum save_safetensors stored in the metadata (or
  // when the file has none: written by another tool); otherwise what does not match. Reads every byte.
  std::string data_problem() const;

  // A CPU tensor over the mapped bytes (no copy when the data is aligned for its type; the mapping is
  // private copy-on-write, so writing to the tensor never changes the file). The tensor keeps the
  // mapping alive after the reader is gone.
  at::Tensor tensor(const std::string& name) const;
  // Every tensor, by name.
  std::map<std::string, at::Tensor> tensors() const;

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> map_;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Reads every tensor of a file (zero-copy views as SafetensorsReader::tensor gives them).
std::map<std::string, at::Tensor> load_safetensors(const std::string& path,
                                                   std::map<std::string, std::string>* metadata = nullptr);

// Writes tensors (any device, any layout; copied to contiguous CPU memory as needed) atomically: the
// file is written under a temporary name in the same directory, flushed and renamed over `path`, so a
// reader never sees a partial file. Names must be unique and non-empty.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
void save_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace sefar::io
