// TensorBoard event files: what `tensorboard --logdir` reads (scalars, histograms, text).
//
// Written by hand rather than through protobuf and TensorFlow's writer: no new dependency (the
// project has CRC-32C already), a few hundred lines, and a format that has stayed the same for years
// (TFRecord framing around serialised tensorboard.Event messages, file version "brain.Event:2"). Only
// the fields below are written; the field numbers are those of tensorboard/compat/proto/*.proto.
//
//   record:    uint64 length (LE), uint32 masked CRC-32C of those 8 bytes, data, uint32 masked CRC of data
//   Event:     wall_time 1 (double), step 2 (int64), file_version 3 (string), summary 5 (Summary),
//              session_log 7 (SessionLog { status 1 (1 = START) })
//   Summary:   value 1 (repeated Value)
//   Value:     tag 1, simple_value 2 (float), histo 5 (HistogramProto), tensor 8 (TensorProto),
//              metadata 9 (SummaryMetadata { plugin_data 1 { plugin_name 1 } })
//   Histogram: min 1, max 2, num 3, sum 4, sum_squares 5 (double), bucket_limit 6, bucket 7 (packed double)
//   Tensor:    dtype 1 (7 = DT_STRING), tensor_shape 2 (empty: a scalar), string_val 8 (bytes)
//
// Scalar fields equal to zero are left out, as proto3 serialisers do (oneof members aside), so the
// bytes are the canonical ones (tests/test_tensorboard.cpp compares them with tensorboard's own
// serialisation).
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace sefar::io::tensorboard {

// Protobuf wire encoding. put_double_field and put_varint_field write proto3 fields without
// presence: a zero (all bits clear) is left out. put_float_field always writes: the one float field,
// Value.simple_value, is a member of a oneof, where a value that is not there is no scalar at all.
void put_varint(std::string& out, std::uint64_t value);
void put_double_field(std::string& out, int field, double value);
void put_float_field(std::string& out, int field, float value);
void put_varint_field(std::string& out, int field, std::uint64_t value);
// Length-delimited: strings, bytes, sub-messages and packed repeated fields.
void put_bytes_field(std::string& out, int field, const std::string& bytes);
void put_packed_doubles(std::string& out, int field, const std::vector<double>& values);

// TFRecord framing.
std::uint32_t masked_crc32c(const void* data, std::size_t n);
std::string frame_record(const std::string& data);

// A histogram's buckets: bucket i holds the values in (bucket_limit[i-1], bucket_limit[i]], the
// first one from `min`. min, max, sum and sum_squares describe the values.
struct Histogram {
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
  std::vector<double> bucket_limit, bucket;
};
// From counts in the buckets ending at `bucket_limit`, the first starting at `lower` (the values
// themselves unknown): the buckets from the first non-empty one to the last, min and max their outer
// edges, the sums taking each value at its bucket's centre.
Histogram histogram_from_counts(double lower, const std::vector<double>& bucket_limit,
                                const std::vector<double>& counts);

// Serialised tensorboard.Event messages (not framed).
std::string file_version_event(double wall_time);
std::string scalar_event(const std::string& tag, float value, std::int64_t step, double wall_time);
std::string histogram_event(const std::string& tag, const Histogram& histogram, std::int64_t step,
                            double wall_time);
// SessionLog { status: START } (Event field 7): a run (re)starts at `step`. TensorBoard drops what an
// earlier file of the folder logged at `step` or later (written after the checkpoint a run resumed
// from), as it does for TensorFlow's restarts.
std::string session_start_event(std::int64_t step, double wall_time);
// A scalar string tensor for the text plugin (rendered as Markdown by TensorBoard).
std::string text_event(const std::string& tag, const std::string& text, std::int64_t step, double wall_time);

// Seconds since the Unix epoch, the events' wall_time.
double wall_clock();

// `events.out.tfevents.<unix seconds>.<hostname>.<pid>.<n>`, the name TensorFlow gives them; the
// seconds are raised where needed so that the name sorts after every events file already in
// `folder` (TensorBoard reads a folder's files in name order, and a resumed run's file must come
// after the earlier run's).
std::string events_file_name(const std::string& folder);

// One events file, opened in a folder that exists. Records are buffered until flush(). Every call
// throws std::runtime_error naming the file when it cannot be written.
class EventWriter {
 public:
  explicit EventWriter(const std::string& folder);
  const std::string& path() const { return path_; }
  void add_scalar(const std::string& tag, double value, std::int64_t step, double wall_time = wall_clock());
  void add_histogram(const std::string& tag, double lower, const std::vector<double>& bucket_limit,
                     const std::vector<double>& counts, std::int64_t step, double wall_time = wall_clock());
  void add_text(const std::string& tag, const std::string& text, std::int64_t step,
                double wall_time = wall_clock());
  void add_session_start(std::int64_t step, double wall_time = wall_clock());
  void flush();

 private:
  void write(const std::string& event);
  std::string path_;
  std::ofstream out_;
};

}  // namespace sefar::io::tensorboard
