// What the report reads from a run directory: metrics.jsonl as typed records (io/metric_records.h),
// with the lines it could not use; profile.json's nodes; any JSON file (pipeline.json, run.json,
// evaluation.json); and where the class names are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/metric_records.h"

namespace sefar::report {

inline constexpr std::size_t kMaxProblems = 25;  // malformed lines listed in full

struct Problem {
  std::string where;  // "metrics.jsonl:17"
  std::string what;
};

// metrics.jsonl, read as the report shows it. Records are keyed by step or epoch; epochs are numbered
// from 1 (a file of an earlier version, numbered from 0, is renumbered). The file is appended to: when
// the step counter goes back to 0 a new run starts there and only the last run is kept (`restarts`);
// when it goes back to a later step (a resumed run), the records from that step and its epoch on
// replace the earlier ones (`notes`).
struct Metrics {
  bool present = false;
  std::string error;  // the file exists but could not be read
  std::size_t lines = 0;
  std::map<std::int64_t, io::StepRecord> steps;
  std::map<std::int64_t, io::EpochRecord> epochs;
  std::map<std::int64_t, io::EvalRecord> evals;  // each with its epoch
  std::vector<Problem> problems;                 // the first kMaxProblems lines skipped
  std::size_t problem_count = 0;
  std::vector<std::string> notes;     // resumes
  std::vector<std::size_t> restarts;  // lines where the step counter starts again at 0
  std::map<std::string, std::size_t> unknown_kinds;
};

// A line that is not a JSON object, or a record without the fields it needs, is listed as a problem
// (`metrics.jsonl:<line>: <what>`) and skipped.
Metrics read_metrics(const std::filesystem::path& file);

struct JsonFile {
  bool present = false;
  std::string error;  // present but unreadable or not JSON
  nlohmann::json value;
};
// Comments are allowed (pipeline files may carry them).
JsonFile read_json_file(const std::filesystem::path& file);

// One node of profile.json; NaN for a number it lacks.
struct ProfileNode {
  std::string id, type;
  double slots = io::kNoValue, items_in = io::kNoValue, items_out = io::kNoValue, skipped = io::kNoValue,
         busy = io::kNoValue, busy_fraction = io::kNoValue, wait = io::kNoValue, blocked = io::kNoValue,
         per_second = io::kNoValue, peak_queue = io::kNoValue, peak_in_flight = io::kNoValue;
  std::vector<std::string> skip_reasons;
};
std::vector<ProfileNode> parse_profile(const nlohmann::json& profile, std::string& error);

// classes.txt in the run directory, else beside a list the resolved pipeline names ("val_list" first;
// the path tried as given, then relative to the run directory's ancestors); empty when none is found.
std::string discover_classes_file(const std::filesystem::path& run_dir, const nlohmann::json& pipeline);

// Fields of JSON objects that are not metric records: NaN, or an empty string, when absent.
double json_number(const nlohmann::json& j, const char* key);
std::string json_string(const nlohmann::json& j, const char* key);
// One line of JSON, cut to `limit` characters.
std::string compact(const nlohmann::json& j, std::size_t limit);

}  // namespace sefar::report
