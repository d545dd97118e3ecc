#include "io/tensorboard.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

#include "io/crc32c.h"

namespace sefar::io::tensorboard {

namespace fs = std::filesystem;

namespace {

enum WireType : std::uint64_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_key(std::string& out, int field, WireType type) {
  put_varint(out, (std::uint64_t(field) << 3) | type);
}

void put_fixed(std::string& out, std::uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(char((bits >> (8 * i)) & 0xff));
}

std::uint64_t bits_of(double value) {
  std::uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

std::uint32_t bits_of(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

// An Event's header fields, the summary to follow.
std::string event_head(std::int64_t step, double wall_time) {
  std::string event;
  put_double_field(event, 1, wall_time);
  put_varint_field(event, 2, std::uint64_t(step));
  return event;
}

// Event { ..., summary { value { <value> } } }
std::string with_value(std::string event, const std::string& value) {
  std::string summary;
  put_bytes_field(summary, 1, value);
  put_bytes_field(event, 5, summary);
  return event;
}

const char kFilePrefix[] = "events.out.tfevents.";

}  // namespace

void put_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(char((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(char(value));
}

void put_double_field(std::string& out, int field, double value) {
  const std::uint64_t bits = bits_of(value);
  if (bits == 0) return;
  put_key(out, field, kFixed64);
  put_fixed(out, bits, 8);
}

void put_float_field(std::string& out, int field, float value) {
  put_key(out, field, kFixed32);
  put_fixed(out, bits_of(value), 4);
}

void put_varint_field(std::string& out, int field, std::uint64_t value) {
  if (value == 0) return;
  put_key(out, field, kVarint);
  put_varint(out, value);
}

void put_bytes_field(std::string& out, int field, const std::string& bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out += bytes;
}

void put_packed_doubles(std::string& out, int field, const std::vector<double>& values) {
  if (values.empty()) return;
  std::string packed;
  for (double v : values) put_fixed(packed, bits_of(v), 8);
  put_bytes_field(out, field, packed);
}

std::uint32_t masked_crc32c(const void* data, std::size_t n) {
  const std::uint32_t crc = crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string frame_record(const std::string& data) {
  std::string record;
  put_fixed(record, data.size(), 8);
  put_fixed(record, masked_crc32c(record.data(), 8), 4);
  record += data;
  put_fixed(record, masked_crc32c(data.data(), data.size()), 4);
  return record;
}

Histogram histogram_from_counts(double lower, const std::vector<double>& bucket_limit,
                                const std::vector<double>& counts) {
  Histogram h;
  for (std::size_t i = 0; i < bucket_limit.size(); ++i) {
    const double n = i < counts.size() ? counts[i] : 0.0;
    const double left = i == 0 ? lower : bucket_limit[i - 1], right = bucket_limit[i];
    if (n > 0) {
      if (h.num == 0) h.min = left;
      h.max = right;
      const double centre = (left + right) / 2;
      h.num += n;
      h.sum += n * centre;
      h.sum_squares += n * centre * centre;
    }
    // The buckets from the first non-empty one to the last: readers take min and max as the outer
    // edges of the first and the last bucket written.
    if (h.num > 0) {
      h.bucket_limit.push_back(right);
      h.bucket.push_back(n);
    }
  }
  while (!h.bucket.empty() && h.bucket.back() <= 0) {
    h.bucket.pop_back();
    h.bucket_limit.pop_back();
  }
  return h;
}

std::string file_version_event(double wall_time) {
  std::string event = event_head(0, wall_time);
  put_bytes_field(event, 3, "brain.Event:2");
  return event;
}

std::string scalar_event(const std::string& tag, float value, std::int64_t step, double wall_time) {
  std::string v;
  put_bytes_field(v, 1, tag);
  put_float_field(v, 2, value);
  return with_value(event_head(step, wall_time), v);
}

std::string histogram_event(const std::string& tag, const Histogram& histogram, std::int64_t step,
                            double wall_time) {
  std::string h;
  put_double_field(h, 1, histogram.min);
  put_double_field(h, 2, histogram.max);
  put_double_field(h, 3, histogram.num);
  put_double_field(h, 4, histogram.sum);
  put_double_field(h, 5, histogram.sum_squares);
  put_packed_doubles(h, 6, histogram.bucket_limit);
  put_packed_doubles(h, 7, histogram.bucket);
  std::string v;
  put_bytes_field(v, 1, tag);
  put_bytes_field(v, 5, h);
  return with_value(event_head(step, wall_time), v);
}

std::string session_start_event(std::int64_t step, double wall_time) {
  constexpr std::uint64_t kStart = 1;
  std::string session_log;
  put_varint_field(session_log, 1, kStart);
  std::string event = event_head(step, wall_time);
  put_bytes_field(event, 7, session_log);
  return event;
}

std::string text_event(const std::string& tag, const std::string& text, std::int64_t step, double wall_time) {
  constexpr std::uint64_t kDtString = 7;
  std::string tensor;
  put_varint_field(tensor, 1, kDtString);
  put_bytes_field(tensor, 2, "");  // a shape with no dimensions: one string
  put_bytes_field(tensor, 8, text);
  std::string plugin_data, metadata;
  put_bytes_field(plugin_data, 1, "text");
  put_bytes_field(metadata, 1, plugin_data);
  std::string v;
  put_bytes_field(v, 1, tag);
  put_bytes_field(v, 8, tensor);
  put_bytes_field(v, 9, metadata);
  return with_value(event_head(step, wall_time), v);
}

double wall_clock() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string events_file_name(const std::string& folder) {
  long long seconds = (long long)wall_clock();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kFilePrefix, 0) != 0) continue;
    const long long earlier = std::atoll(name.c_str() + sizeof kFilePrefix - 1);
    seconds = std::max(seconds, earlier + 1);
  }
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  static std::atomic<int> files{0};
  return fmt::format("{}{}.{}.{}.{}", kFilePrefix, seconds, host, ::getpid(), files++);
}

EventWriter::EventWriter(const std::string& folder)
    : path_((fs::path(folder) / events_file_name(folder)).string()) {
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw std::runtime_error(fmt::format("cannot create {}: {}", path_, std::strerror(errno)));
  write(file_version_event(wall_clock()));
  flush();
}

void EventWriter::add_scalar(const std::string& tag, double value, std::int64_t step, double wall_time) {
  write(scalar_event(tag, float(value), step, wall_time));
}

void EventWriter::add_histogram(const std::string& tag, double lower, const std::vector<double>& bucket_limit,
                                const std::vector<double>& counts, std::int64_t step, double wall_time) {
  write(histogram_event(tag, histogram_from_counts(lower, bucket_limit, counts), step, wall_time));
}

void EventWriter::add_text(const std::string& tag, const std::string& text, std::int64_t step,
                           double wall_time) {
  write(text_event(tag, text, step, wall_time));
}

void EventWriter::add_session_start(std::int64_t step, double wall_time) {
  write(session_start_event(step, wall_time));
}

void EventWriter::write(const std::string& event) {
  const std::string record = frame_record(event);
  out_.write(record.data(), std::streamsize(record.size()));
  if (!out_) throw std::runtime_error(fmt::format("cannot write {}", path_));
}

void EventWriter::flush() {
  out_.flush();
  if (!out_) throw std::runtime_error(fmt::format("cannot write {}", path_));
}

}  // namespace sefar::io::tensorboard
