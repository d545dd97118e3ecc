// The run directory's duties for a training run: metrics.jsonl (cut back to a checkpoint's length on
// resume) and its TensorBoard form in tb/, checkpoint rotation and `best`, the final model, and the
// progress line. The training loop node (nodes/train_loop.cpp) decides when; this component knows
// how and where.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/validate.h"
#include "io/metric_records.h"
#include "io/tensorboard.h"
#include "models/trainer.h"

namespace sefar::nodes {

// What the training loop keeps across a resume, stored in every checkpoint's sidecar as "node".
// Serialised by one field list (the macro below), so saving and loading cannot drift apart.
struct LoopState {
  int epoch = -1;           // the epoch of the last batch taken
  bool epoch_open = false;  // `epoch` has steps and is not closed (evaluated, checkpointed) yet
  std::int64_t epoch_steps = 0, last_epoch_steps = 0;
  double eta_sum = 0, eta_high = 0, eta_count = 0;  // eta over the epoch's unlabeled clips
  std::vector<std::int64_t> eta_hist;               // per-clip eta histogram of the epoch
  double best_top1 = -1;
  std::int64_t skipped_total = 0, epoch_skipped = 0;   // steps skipped as non-finite
  std::vector<std::int64_t> skipped_steps;             // the first 100
  std::uint64_t metrics_bytes = 0;                     // length of metrics.jsonl after our records
  std::uint64_t labeled_next = 0, unlabeled_next = 0;  // source positions after the batches trained on
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LoopState, epoch, epoch_open, epoch_steps, last_epoch_steps,
                                                eta_sum, eta_high, eta_count, eta_hist, best_top1,
                                                skipped_total, epoch_skipped, skipped_steps, metrics_bytes,
                                                labeled_next, unlabeled_next)

class RunDirectory {
 public:
  // `dir` empty: a run without outputs (every call below does nothing). `log` prints a line.
  RunDirectory(std::string dir, int keep_last, std::function<void(const std::string&)> log);
  bool enabled() const { return !dir_.empty(); }
  const std::string& path() const { return dir_; }

  // Creates checkpoints/, removes leftovers (temporary files of a write cut short; in a fresh run,
  // the checkpoints of an earlier run in this folder, whose metrics start anew too) and opens
  // metrics.jsonl, cut back to `state.metrics_bytes` when resuming. Creates tb/ and a new
  // TensorBoard events file in it (a fresh run first removes the earlier run's).
  void open(bool resuming, LoopState& state);
  // Appends one record to metrics.jsonl and counts its bytes in `state`, and writes its numbers to
  // the events file: a "step" record's as train/<field>, an "epoch" record's as epoch/<field> (its
  // eta_hist as the histogram epoch/eta), an "eval" record's as eval/<field>, every numeric field
  // but step and epoch, at the record's step (an epoch record's: the latest step written).
  void write_metrics(const nlohmann::json& record, LoopState& state);
  // The same for a typed record (io/metric_records.h), written as its metrics.jsonl line.
  void write_metrics(const io::StepRecord& record, LoopState& state);
  void write_metrics(const io::EpochRecord& record, LoopState& state);
  void write_metrics(const io::EvalRecord& record, LoopState& state);
  // `text` (Markdown) in TensorBoard's text tab under `tag`, at the latest step written.
  void write_text(const std::string& tag, const std::string& text);
  // Writes checkpoints/<name> through `save(path)` (and `best` when `top1` beats state.best_top1),
  // then drops the oldest epoch/step checkpoints beyond keep_last. A write failure is a
  // graph::StorageError; the earlier checkpoints are left as they are.
  void save_checkpoint(const std::string& name, double top1, LoopState& state,
                       const std::function<void(const std::string& path)>& save);
  // RUN_DIR/model.safetensors: the model to use afterwards (sefar infer, feature export), with
  // `metadata` besides the model config.
  void save_model(models::MultiGranularViT& model, const std::map<std::string, std::string>& metadata = {});
  void flush();

 private:
  std::string dir_;
  int keep_last_;
  std::function<void(const std::string&)> log_;
  void write_events(const nlohmann::json& record);

  std::ofstream metrics_;
  std::unique_ptr<io::tensorboard::EventWriter> events_;
  std::int64_t events_step_ = 0;    // the latest step written, where epoch records go
  std::vector<std::string> saved_;  // epoch/step checkpoints, oldest first
};

// What an earlier run left in `dir` (pipeline.json, metrics.jsonl, model.safetensors, checkpoints),
// as names relative to it; empty when there is none. A fresh run refuses such a directory unless told
// to overwrite it.
std::vector<std::string> earlier_run_files(const std::string& dir);

// An exclusive lock on a run directory, held while the object lives (and so for the whole run): flock
// on the directory itself, so nothing is created in it, and the kernel drops it when the process
// ends however it ends.
class RunDirLock {
 public:
  RunDirLock() = default;
  // Locks `dir`, which exists. On failure returns an unlocked object and says why in `error` (another
  // process holds it: its pid, read from /proc/locks where the system has it).
  static RunDirLock acquire(const std::string& dir, std::string& error);
  RunDirLock(RunDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  RunDirLock& operator=(RunDirLock&& other) noexcept;
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;
  ~RunDirLock();
  bool locked() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Size and CRC-32C of every split list the pipeline names (parameters declared with
// NodeSpec::param_split_list, non-empty), by path: {"path": {"bytes": N, "crc32c": "hex"}}. A list
// that cannot be read is left out (the node that reads it reports it).
nlohmann::json list_fingerprints(const graph::ValidatedPipeline& pipeline);
// One line per list of `recorded` whose size or checksum is not the same in `current`.
std::vector<std::string> changed_lists(const nlohmann::json& recorded, const nlohmann::json& current);

// What is left of a run, in steps and evaluations, and what each has cost so far.
struct RunLeft {
  std::int64_t warmup_steps = 0, semi_steps = 0, evaluations = 0;
};
// Mean seconds of a step of each phase and of an evaluation; below 0: not timed yet.
struct PhaseTimes {
  double warmup_step = -1, semi_step = -1, evaluation = -1;
};
// The time left: each phase's remaining steps at that phase's step time, plus the remaining
// evaluations. `complete` is false when a phase with steps left has not been timed yet (the estimate
// then covers only what was timed).
struct TimeLeft {
  double seconds = 0;
  bool complete = true;
};
TimeLeft time_left(const RunLeft& left, const PhaseTimes& times);

// The console's progress line, and the run's clips/s and time left. Step times are measured between
// consecutive steps with evaluations and checkpoints taken out, per phase (a semi-supervised step
// costs several warm-up steps).
class Progress {
 public:
  Progress(int epochs, int warmup_epochs, int eval_every, bool evaluates)
      : epochs_(epochs),
        warmup_epochs_(warmup_epochs),
        eval_every_(eval_every),
        evaluates_(evaluates),
        start_(now()),
        epoch_start_(start_),
        last_(start_) {}
  void start_epoch() { epoch_start_ = last_ = now(); }
  double epoch_seconds() const { return seconds_since(epoch_start_); }
  // A step of phase `semi` ended now; returns its seconds (evaluations and checkpoints left out).
  double step_done(bool semi);
  // An evaluation (or a checkpoint) took `seconds`: counted apart from the steps.
  void pause_done(double seconds, bool evaluation);
  // `semi_configured`: the run has an unlabeled phase (warm-up steps say so).
  std::string line(const models::StepStats& s, std::int64_t clips, const LoopState& state,
                   bool semi_configured) const;

  static std::chrono::steady_clock::time_point now() { return std::chrono::steady_clock::now(); }
  static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(now() - t).count();
  }

 private:
  int epochs_, warmup_epochs_, eval_every_;
  bool evaluates_;
  std::chrono::steady_clock::time_point start_, epoch_start_, last_;
  // The latest step times of each phase (a window: steps get faster as caches warm and slower as
  // the machine gets busier, so the oldest say least) and every evaluation's.
  std::deque<double> warmup_steps_, semi_steps_;
  double eval_sum_ = 0;
  int evaluations_ = 0;
};

std::string format_duration(double seconds);

}  // namespace sefar::nodes
