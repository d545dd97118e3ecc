// The records of a training run's metrics.jsonl (one JSON object a line, told apart by "kind") and of
// an evaluation run's evaluation.json, as types: the training loop (nodes/train_loop.cpp, through
// nodes/run_directory.h) and the classify node build them and write them with to_json; the report
// (report/) reads them back with from_json. Each record's keys are named once, in one field list in
// metric_records.cpp that both directions walk.
//
// A record describes its file: a number the writer may leave out is an std::optional (left out of
// the JSON when empty); a double the writer always writes reads back as NaN when a file lacks it or
// holds null (nlohmann::json writes a NaN or an infinity as null). The JSON objects are
// nlohmann::json, whose keys come out sorted: a line's bytes depend only on its values.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sefar::io {

// A number a record lacks, or a NaN or an infinity written (as null).
inline constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

// One training step ("kind": "step").
struct StepRecord {
  static constexpr const char* kind = "step";
  std::int64_t step = 0;   // steps done before this one
  std::int64_t epoch = 0;  // counted from 1 (metrics.jsonl of earlier versions: from 0)
  double lr = kNoValue, xi = kNoValue;
  double loss = kNoValue, loss_sup = kNoValue, loss_un = kNoValue, loss_mix = kNoValue;
  std::optional<std::int64_t> labeled, unlabeled;  // clips in the step's batches
  std::optional<bool> semi;                        // the step used unlabeled clips; see is_semi()
  std::optional<double> grad_norm;     // before clipping; only the last step of an accumulation window
  std::optional<std::int64_t> micro;   // place in the accumulation window, when accumulating
  std::optional<std::string> skipped;  // "nonfinite": the step changed nothing
  std::optional<double> comm_seconds;  // data-parallel job: time spent averaging
  // Semi-supervised steps: the regulation weight over the unlabeled batch, the TokenMix lambda, the
  // pseudo-labels' accuracy (when the unlabeled clips carry true labels).
  std::optional<double> eta_mean, eta_above_half, mix_lambda, pseudo_accuracy;
  std::optional<std::vector<std::int64_t>> eta_hist;  // per-clip eta, equal bins over [0, 1]
  std::optional<double> seconds;                      // wall time of the step

  // "semi" when the record has it; records of earlier versions: whether eta_mean is a number.
  bool is_semi() const;
};

// The close of an epoch ("kind": "epoch").
struct EpochRecord {
  static constexpr const char* kind = "epoch";
  std::int64_t epoch = 0;  // counted from 1 (earlier versions: from 0)
  std::optional<std::int64_t> steps;
  std::optional<double> seconds;
  // Over the epoch's unlabeled clips, when it had semi-supervised steps.
  std::optional<double> eta_mean, eta_above_half;
  std::optional<std::vector<std::int64_t>> eta_hist;  // equal bins over [0, 1]
  std::optional<std::int64_t> skipped_steps;          // steps skipped as non-finite
};

// An evaluation ("kind": "eval" in metrics.jsonl; evaluation.json holds one without a kind).
struct EvalRecord {
  static constexpr const char* kind = "eval";
  std::optional<std::int64_t> epoch;  // metrics.jsonl: the epoch evaluated after
  std::optional<std::int64_t> step;   // metrics.jsonl: steps done then
  std::optional<std::int64_t> clips;
  double top1 = kNoValue, top5 = kNoValue, mean_class_accuracy = kNoValue;
  std::vector<double> per_class_accuracy;
  std::vector<std::vector<std::int64_t>> confusion;  // [truth][prediction]; empty: none
  std::optional<double> seconds;                     // metrics.jsonl
  std::optional<std::string> weights;                // evaluation.json: the weights evaluated
};

// The record's fields as a JSON object, without its "kind".
nlohmann::json to_json(const StepRecord& record);
nlohmann::json to_json(const EpochRecord& record);
nlohmann::json to_json(const EvalRecord& record);

// Reads a record from a JSON object, leniently: a field of the wrong type counts as absent. Returns
// false when the record lacks what it cannot do without (a step record's integer "step" and "epoch",
// an epoch record's "epoch"), with `problem` saying what (`step record without an integer "step"`).
// Returns true with a `problem` when a part was dropped (an eval record's "confusion" that is not a
// square matrix of counts), true with an empty `problem` otherwise.
bool from_json(const nlohmann::json& j, StepRecord& record, std::string& problem);
bool from_json(const nlohmann::json& j, EpochRecord& record, std::string& problem);
bool from_json(const nlohmann::json& j, EvalRecord& record, std::string& problem);

// A record as its metrics.jsonl line: its fields and its "kind".
nlohmann::json metrics_line(const StepRecord& record);
nlohmann::json metrics_line(const EpochRecord& record);
nlohmann::json metrics_line(const EvalRecord& record);

// A metrics.jsonl line's "kind" (empty when there is none) and its integer "epoch", whatever the kind.
std::string record_kind(const nlohmann::json& line);
std::optional<std::int64_t> record_epoch(const nlohmann::json& line);

}  // namespace sefar::io
