#include "io/metric_records.h"

#include <cmath>
#include <type_traits>

namespace sefar::io {

using json = nlohmann::json;

namespace {

constexpr const char* kKindKey = "kind";
constexpr const char* kEpochKey = "epoch";

// The field lists: each record's keys, once, walked by to_json and from_json. `R` is the record or
// the const record.

template <class R, class F>
void step_fields(R& r, F&& field) {
  field("step", r.step);
  field(kEpochKey, r.epoch);
  field("lr", r.lr);
  field("xi", r.xi);
  field("loss", r.loss);
  field("loss_sup", r.loss_sup);
  field("loss_un", r.loss_un);
  field("loss_mix", r.loss_mix);
  field("labeled", r.labeled);
  field("unlabeled", r.unlabeled);
  field("semi", r.semi);
  field("grad_norm", r.grad_norm);
  field("micro", r.micro);
  field("skipped", r.skipped);
  field("comm_seconds", r.comm_seconds);
  field("eta_mean", r.eta_mean);
  field("eta_above_half", r.eta_above_half);
  field("mix_lambda", r.mix_lambda);
  field("pseudo_accuracy", r.pseudo_accuracy);
  field("eta_hist", r.eta_hist);
  field("seconds", r.seconds);
}

template <class R, class F>
void epoch_fields(R& r, F&& field) {
  field(kEpochKey, r.epoch);
  field("steps", r.steps);
  field("seconds", r.seconds);
  field("eta_mean", r.eta_mean);
  field("eta_above_half", r.eta_above_half);
  field("eta_hist", r.eta_hist);
  field("skipped_steps", r.skipped_steps);
}

template <class R, class F>
void eval_fields(R& r, F&& field) {
  field(kEpochKey, r.epoch);
  field("step", r.step);
  field("clips", r.clips);
  field("top1", r.top1);
  field("top5", r.top5);
  field("mean_class_accuracy", r.mean_class_accuracy);
  field("per_class_accuracy", r.per_class_accuracy);
  field("confusion", r.confusion);
  field("seconds", r.seconds);
  field("weights", r.weights);
}

// Writing: every plain field, the optional ones that hold a value.

template <class T>
void put(json& j, const char* key, const T& value) {
  j[key] = value;
}
template <class T>
void put(json& j, const char* key, const std::optional<T>& value) {
  if (value) j[key] = *value;
}

template <class Record, class Fields>
json write(const Record& record, Fields fields) {
  json j = json::object();
  fields(record, [&](const char* key, const auto& value) { put(j, key, value); });
  return j;
}

// Reading: a field of the wrong type is absent. A plain integer field is required: the first one
// absent is named in `missing`. A part dropped as malformed is described in `dropped`.

struct Reading {
  const char* missing = nullptr;
  std::string dropped;
};

// An integer, also when written as a double with no fraction.
std::optional<std::int64_t> integer(const json& v) {
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (!v.is_number_float()) return std::nullopt;
  const double d = v.get<double>();
  if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9e15) return std::nullopt;
  return std::int64_t(d);
}

// Integers in an array; nothing when one is not.
std::optional<std::vector<std::int64_t>> integers(const json& v) {
  if (!v.is_array()) return std::nullopt;
  std::vector<std::int64_t> out;
  for (const auto& x : v) {
    auto i = integer(x);
    if (!i) return std::nullopt;
    out.push_back(*i);
  }
  return out;
}

void get(Reading& in, const json& v, const char* key, std::int64_t& out) {
  if (auto i = integer(v))
    out = *i;
  else if (!in.missing)
    in.missing = key;
}
void get(Reading&, const json& v, const char*, double& out) {
  out = v.is_number() ? v.get<double>() : kNoValue;
}
void get(Reading&, const json& v, const char*, std::optional<double>& out) {
  if (v.is_number())
    out = v.get<double>();
  else if (v.is_null())
    out = kNoValue;  // a NaN or an infinity written
}
void get(Reading&, const json& v, const char*, std::optional<std::int64_t>& out) {
  out = integer(v);
}
void get(Reading&, const json& v, const char*, std::optional<bool>& out) {
  if (v.is_boolean()) out = v.get<bool>();
}
void get(Reading&, const json& v, const char*, std::optional<std::string>& out) {
  if (v.is_string()) out = v.get<std::string>();
}
void get(Reading&, const json& v, const char*, std::optional<std::vector<std::int64_t>>& out) {
  out = integers(v);
}
void get(Reading&, const json& v, const char*, std::vector<double>& out) {
  out.clear();
  if (!v.is_array()) return;
  for (const auto& x : v) {
    if (!x.is_number()) {
      out.clear();
      return;
    }
    out.push_back(x.get<double>());
  }
}
// A square matrix of counts; anything else is dropped and described.
void get(Reading& in, const json& v, const char* key, std::vector<std::vector<std::int64_t>>& out) {
  out.clear();
  bool numbers = v.is_array();
  for (std::size_t i = 0; numbers && i < v.size(); ++i) {
    const json& row = v[i];
    numbers = row.is_array() && row.size() == v.size();
    for (std::size_t k = 0; numbers && k < row.size(); ++k) numbers = row[k].is_number();
  }
  if (!numbers) {
    in.dropped = std::string("\"") + key + "\" is not a square matrix of numbers (matrix skipped)";
    return;
  }
  for (const auto& row : v) {
    auto counts = integers(row);
    if (!counts) {
      out.clear();
      in.dropped = std::string("\"") + key + "\" holds a count that is not a whole number (matrix skipped)";
      return;
    }
    out.push_back(std::move(*counts));
  }
}

template <class Record, class Fields>
bool read(const json& j, Record& record, Fields fields, std::string& problem) {
  Reading in;
  record = Record{};
  fields(record, [&](const char* key, auto& value) {
    constexpr bool required = std::is_same_v<std::decay_t<decltype(value)>, std::int64_t>;
    if (auto it = j.find(key); it != j.end()) {
      get(in, *it, key, value);
    } else if (required && !in.missing) {
      in.missing = key;
    }
  });
  if (in.missing) {
    problem = std::string(Record::kind) + " record without an integer \"" + in.missing + "\"";
    return false;
  }
  problem = in.dropped.empty() ? std::string() : std::string(Record::kind) + " record: " + in.dropped;
  return true;
}

template <class Record>
json line(const Record& record) {
  json j = to_json(record);
  j[kKindKey] = Record::kind;
  return j;
}

}  // namespace

bool StepRecord::is_semi() const {
  return semi ? *semi : eta_mean && std::isfinite(*eta_mean);
}

json to_json(const StepRecord& record) {
  return write(record, [](auto& r, auto&& f) { step_fields(r, f); });
}
json to_json(const EpochRecord& record) {
  return write(record, [](auto& r, auto&& f) { epoch_fields(r, f); });
}
json to_json(const EvalRecord& record) {
  return write(record, [](auto& r, auto&& f) { eval_fields(r, f); });
}

bool from_json(const json& j, StepRecord& record, std::string& problem) {
  return read(
      j, record, [](auto& r, auto&& f) { step_fields(r, f); }, problem);
}
bool from_json(const json& j, EpochRecord& record, std::string& problem) {
  return read(
      j, record, [](auto& r, auto&& f) { epoch_fields(r, f); }, problem);
}
bool from_json(const json& j, EvalRecord& record, std::string& problem) {
  return read(
      j, record, [](auto& r, auto&& f) { eval_fields(r, f); }, problem);
}

json metrics_line(const StepRecord& record) {
  return line(record);
}
json metrics_line(const EpochRecord& record) {
  return line(record);
}
json metrics_line(const EvalRecord& record) {
  return line(record);
}

std::string record_kind(const json& line) {
  auto it = line.find(kKindKey);
  return it != line.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<std::int64_t> record_epoch(const json& line) {
  auto it = line.find(kEpochKey);
  return it != line.end() ? integer(*it) : std::nullopt;
}

}  // namespace sefar::io
