// Running a pipeline the way `sefar run` does, as a library the CLI calls: resolving the pipeline
// (or the run being resumed and its newest intact checkpoint), the run directory's lock and checks,
// a data-parallel job's communicator, the run, and what it leaves (skip list, profile, trace,
// report), gathered across ranks.
#pragma once

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "graph/pipeline.h"
#include "graph/registry.h"
#include "graph/validate.h"
#include "nodes/run_record.h"

namespace sefar::app {

// A request that cannot be carried out as given (a missing pipeline, an unwritable --trace): exit 2,
// and the CLI shows the command's usage.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A run that would lose or mix up earlier work is refused before anything is written (exit 2,
// without the usage text).
struct RefusedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The exit status of a command that `error` ended: graph::exit_status, and 2 for UsageError and
// RefusedError.
int exit_status(const std::exception_ptr& error);

// LibTorch's intra-op thread count, capped at the machine's cores (saying so, naming `who`): the
// hook a run hands the runtime (graph::RunOptions::set_compute_threads), `sefar validate` too.
void set_compute_threads(int threads, const std::string& who);

// Every node type sefar has (nodes/builtin.h).
graph::Registry make_registry();

// Loads `path`, applies `sets` (--set KEY=VALUE), resolves "auto" parameters (their warnings on
// stderr unless `quiet`) and ${...}, and validates. `lenient`: "auto" parameters that cannot be
// resolved yet take placeholder values (a pipeline checked or drawn before its weights exist).
graph::ValidatedPipeline resolve_pipeline(const std::string& path, const std::vector<std::string>& sets,
                                          const graph::Registry& registry,
                                          graph::PipelineDoc* doc_out = nullptr, bool lenient = false,
                                          bool quiet = false);

struct RunRequest {
  std::string path;                   // the pipeline file (may be empty with resume)
  std::vector<std::string> sets;      // --set KEY=VALUE
  std::string resume;                 // RUN_DIR to continue
  bool overwrite = false;             // start over in a run directory that holds a run
  bool allow_changed_lists = false;   // resume although a split list changed
  std::string trace, profile;         // output files (empty: none)
  bool quiet = false;                 // no profile table
  std::string dist_backend = "auto";  // data-parallel backend
  std::string command_line;           // as given, for run.json
};

// Runs `request`; returns the exit status of a run that ended (0), throws what stopped it (classify
// with graph::exit_status, or UsageError / RefusedError). `console` is the caller's, so that it
// still copies the message the caller prints when the run fails: from the moment the run directory
// exists, the console is kept in RUN_DIR/console.log.
int run_pipeline(const RunRequest& request, std::optional<nodes::ConsoleLog>& console);

}  // namespace sefar::app
