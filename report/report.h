// The run report: one self-contained HTML file (inline SVG and CSS, no JavaScript, nothing fetched
// from the network) drawn from the files of a run directory:
//
// - metrics.jsonl (written by the train_loop node; its records are io/metric_records.h's): loss
//   curves (total, supervised, unlabeled, mix) against the step, validation top-1 / top-5 /
//   mean-class accuracy against the epoch, the distribution of the regulation weight eta per epoch,
//   the learning-rate and xi schedules, and the confusion matrix of the last evaluation;
// - profile.json (`sefar run --profile`, or the run directory's copy): busy share of every node as
//   bars, with its busy, input-wait and blocked seconds, and the full table;
// - pipeline.json (the resolved pipeline): name, parameters, nodes and edges;
// - run.json: who ran what, with which build; evaluation.json: an evaluation run's results.
//
// The eta distribution per epoch is a histogram when the epoch record (or the step records) carry
// `eta_hist` (equal-width bins over [0, 1]); otherwise a box plot of the per-step means `eta_mean`.
// The share of eta above 0.5 is drawn on the same axis.
//
// A missing file leaves its sections saying so. A line of metrics.jsonl that is not a JSON object,
// or a record without the fields it needs, is listed as `metrics.jsonl:<line>: <what>` and skipped.
// metrics.jsonl is appended to: when the step counter goes back to 0 a new run starts there and the
// report shows the last run; when it goes back to a later step (a resumed run), the records from that
// step (and its epoch) on replace the earlier ones. Both are noted in the report.
//
// The page is built in report.cpp from the charts of report/charts.h, drawn with the SVG kit of
// report/svg.h, from what report/run_files.h reads. Rendering keeps no state between calls: the same
// files give the same text, and calls may run concurrently.
#pragma once

#include <string>
#include <vector>

namespace sefar::report {

struct ReportOptions {
  std::string title;                     // empty: the pipeline's "name", else the directory's name
  std::vector<std::string> class_names;  // in label order; empty: read from classes_file
  // "index name" or "name" per line (io/class_names.h). Empty: <run_dir>/classes.txt if present, else
  // the classes.txt beside a "val_list" parameter of the resolved pipeline (the path tried as given,
  // then relative to the run directory's ancestors). None found: label numbers.
  std::string classes_file;
};

// The report as HTML text. Throws std::invalid_argument when run_dir is not a directory.
std::string render_report(const std::string& run_dir, const ReportOptions& options = {});

// Writes <run_dir>/report.html atomically (util/atomic_file.h). Throws std::invalid_argument when
// run_dir is not a directory, util::WriteError when the file cannot be written.
void write_report(const std::string& run_dir, const ReportOptions& options = {});

}  // namespace sefar::report
